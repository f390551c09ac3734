"""The Nagios output, perfdata and range parsers: the guidelines' examples, real
plugin lines, and properties (Hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pharosd.probes.nagios import (
    MAX_ITEMS,
    MAX_PROBLEMS,
    PerfData,
    Range,
    RangeError,
    evaluate,
    parse_output,
    parse_perfdata,
    parse_range,
    perfdata_values,
    quote_label,
    safe_label,
    to_base_unit,
)

INF = math.inf

# -- ranges: the guidelines' table ("generate an alert if x ...") ------------------


@pytest.mark.parametrize(("text", "alerting", "quiet"), [
    ("10", [-0.1, 10.1, 1e9], [0, 5, 10]),                 # < 0 or > 10
    ("10:", [9.99, 0, -5], [10, 11, 1e12]),                # < 10
    ("~:10", [10.01, 1e9], [10, 0, -1e12]),                # > 10
    ("10:20", [9.9, 20.1], [10, 15, 20]),                  # < 10 or > 20
    ("@10:20", [10, 15, 20], [9.9, 20.1]),                 # >= 10 and <= 20
])
def test_guideline_range_table(text, alerting, quiet):
    r = parse_range(text)
    for x in alerting:
        assert r.alerts(x), (text, x)
    for x in quiet:
        assert not r.alerts(x), (text, x)


@pytest.mark.parametrize(("text", "expected"), [
    ("10", Range(0, 10)),
    ("10:", Range(10, INF)),
    ("~:10", Range(-INF, 10)),
    ("10:20", Range(10, 20)),
    ("@10:20", Range(10, 20, inside=True)),
    ("0.5:1.5", Range(0.5, 1.5)),
    ("-10:-5", Range(-10, -5)),
    ("~:", Range(-INF, INF)),
    (":10", Range(0, 10)),           # a start of 0 may be left out before the colon too
    ("@~:0", Range(-INF, 0, inside=True)),
    ("1e3", Range(0, 1000)),
])
def test_parse_range_values(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["", "@", "abc", "20:10", "-10", "1:2:3", "10:~",
                                  "~", "1,5", "5x", "@@1"])
def test_parse_range_rejects(text):
    with pytest.raises(RangeError):
        parse_range(text)


# The guidelines' command line examples: (warn, crit) -> {value: status}.
@pytest.mark.parametrize(("warn", "crit", "cases"), [
    # Critical if "stuff" is over 20, else warn if over 10 (critical if less than 0)
    ("10", "20", {25: 2, 15: 1, 5: 0, 0: 0, -1: 2}),
    # Same as above; negative "stuff" is OK
    ("~:10", "~:20", {25: 2, 15: 1, 5: 0, -1: 0}),
    # Critical if over 20, else warn if below 10 (critical if less than 0)
    ("10:", "20", {25: 2, 15: 0, 5: 1, -1: 2}),
    # Critical if "stuff" is less than 1
    (None, "1:", {0: 2, 0.5: 2, 1: 0, 100: 0}),
    # Critical if above 10; warn if above zero
    ("~:0", "10", {11: 2, 5: 1, 0: 0}),
    # The only noncritical range is 5:6
    (None, "5:6", {4.9: 2, 5: 0, 6: 0, 6.1: 2}),
    # Critical if "stuff" is 10 to 20
    (None, "@10:20", {10: 2, 15: 2, 20: 2, 9: 0, 21: 0}),
])
def test_guideline_command_line_examples(warn, crit, cases):
    w = None if warn is None else parse_range(warn)
    c = parse_range(crit)
    for value, status in cases.items():
        assert evaluate(value, w, c) == status, (warn, crit, value)


# -- ranges: properties -----------------------------------------------------------

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def ranges(draw):
    start = draw(st.one_of(st.just(-INF), st.just(0.0), finite))
    end = draw(st.one_of(st.just(INF), finite))
    assume(start <= end)
    return Range(start, end, draw(st.booleans()))


@given(ranges())
def test_range_text_round_trips(r):
    assert parse_range(str(r)) == r


@given(ranges(), finite)
def test_range_alerts_outside_or_inside(r, x):
    inside = r.start <= x <= r.end
    assert r.alerts(x) == (inside if r.inside else not inside)


@given(st.booleans(), st.one_of(st.none(), st.just("~"), finite), st.one_of(st.none(), finite),
       finite)
def test_range_syntax_semantics(at, start, end, x):
    """Build range text from parts and check it against the guidelines' rules."""
    if start is None and end is None:
        return
    if start is None:
        text, lo, hi = repr(end), 0.0, end                       # "N": 0..N
    else:
        lo = -INF if start == "~" else float(start)
        hi = INF if end is None else end
        text = f"{start if start == '~' else repr(start)}:{'' if end is None else repr(end)}"
    text = ("@" if at else "") + text
    if lo > hi:
        with pytest.raises(RangeError):
            parse_range(text)
        return
    alert = (lo <= x <= hi) if at else not (lo <= x <= hi)
    assert parse_range(text).alerts(x) == alert


@given(st.text(max_size=30))
def test_parse_range_raises_only_range_error(text):
    try:
        r = parse_range(text)
    except RangeError:
        return
    assert r.start <= r.end


def test_nan_never_alerts():
    assert not parse_range("10").alerts(math.nan)
    assert not parse_range("@~:").alerts(math.nan)


# -- perfdata: the guidelines' format and real plugin lines --------------------------


def test_perfdata_full_item():
    r = parse_perfdata("'label'=5MB;10;20;0;100")
    assert r.errors == 0
    assert r.items == (PerfData("label", 5, "MB", Range(0, 10), Range(0, 20), 0, 100),)


@pytest.mark.parametrize(("text", "label"), [
    ("'a b'=1", "a b"),
    ("'a=b'=1", "a=b"),
    ("'it''s'=1", "it's"),
    ("''''=1", "'"),
    ("'x '' y ''z'''=1", "x ' y 'z'"),
    ("plain=1", "plain"),
    ("/var/log=1", "/var/log"),
    ("ünïcode=1", "ünïcode"),
])
def test_perfdata_labels(text, label):
    r = parse_perfdata(text)
    assert r.errors == 0
    assert [i.label for i in r.items] == [label]


@pytest.mark.parametrize(("text", "value", "uom"), [
    ("t=1s", 1, "s"), ("t=5ms", 5, "ms"), ("t=7us", 7, "us"), ("p=99.5%", 99.5, "%"),
    ("b=1B", 1, "B"), ("b=2KB", 2, "KB"), ("b=3MB", 3, "MB"), ("b=4GB", 4, "GB"),
    ("b=5TB", 5, "TB"), ("c=123c", 123, "c"), ("n=42", 42, ""), ("n=-3.5", -3.5, ""),
    ("n=.5", 0.5, ""), ("n=1.", 1.0, ""), ("temp=21°C", 21, "°C"),
])
def test_perfdata_units(text, value, uom):
    (item,) = parse_perfdata(text).items
    assert (item.value, item.uom) == (value, uom)


def test_perfdata_value_u_and_empty_and_trailing_fields():
    r = parse_perfdata("a=U;;;; b=1;;; c=2;5 d=3;;7 e=4;;;0")
    assert r.errors == 0
    a, b, c, d, e = r.items
    assert a.value is None and a.warn is None
    assert (b.value, b.warn, b.crit, b.min, b.max) == (1, None, None, None, None)
    assert c.warn == Range(0, 5) and c.crit is None
    assert d.warn is None and d.crit == Range(0, 7)
    assert e.min == 0 and e.max is None


def test_real_plugin_lines():
    load = parse_perfdata("load1=0.610;5.000;10.000;0; load5=0.420;5.000;10.000;0; "
                          "load15=0.230;5.000;10.000;0; ")
    assert [(i.label, i.value) for i in load.items] == [
        ("load1", 0.61), ("load5", 0.42), ("load15", 0.23)]
    assert load.items[0].warn == Range(0, 5) and load.items[0].crit == Range(0, 10)
    disk = parse_perfdata(" /=24797773824B;216442024755;243497277849;0;270552530944")
    assert disk.items == (PerfData("/", 24797773824, "B", Range(0, 216442024755),
                                   Range(0, 243497277849), 0, 270552530944),)
    procs = parse_perfdata(" procs=0;;1:;0;")
    assert procs.items == (PerfData("procs", 0, "", None, Range(1, INF), 0, None),)
    tcp = parse_perfdata("time=0.000423s;;;0.000000;10.000000")
    assert tcp.items == (PerfData("time", 0.000423, "s", None, None, 0, 10),)
    http = parse_perfdata("time=0.270634s;;;0.000000 size=20156B;;;0")
    assert [(i.label, i.value, i.uom) for i in http.items] == [
        ("time", 0.270634, "s"), ("size", 20156, "B")]
    assert load.errors == disk.errors == procs.errors == tcp.errors == http.errors == 0


@pytest.mark.parametrize("bad", [
    "garbage", "=5", "x=", "x=abc", "x=1.2.3", "x=1,5", "x=1;2;3;4;5;6", "''=1", "x=1e999",
    "x=inf", "x=nan",
    "'unterminated=1",
])
def test_malformed_item_is_skipped_and_counted(bad):
    r = parse_perfdata(f"a=1 {bad} z=2")
    assert r.errors == 1
    labels = [i.label for i in r.items]
    if bad.startswith("'unterminated"):
        assert labels == ["a"]          # the quote runs to the end: nothing after it is safe
    else:
        assert labels == ["a", "z"]
    assert r.problems


def test_bad_threshold_field_drops_the_field_not_the_item():
    r = parse_perfdata("a=1;abc;20:10;x;9 b=2;;;1e999")
    assert r.errors == 4
    a, b = r.items
    assert (a.value, a.warn, a.crit, a.min, a.max) == (1, None, None, None, 9)
    assert b.value == 2


def test_min_max_may_repeat_the_unit():
    (item,) = parse_perfdata("t=5ms;;;0ms;100ms").items
    assert (item.min, item.max) == (0, 100)


# -- plugin output: the Nagios plugin API examples -------------------------------------


def test_output_text_only():
    out = parse_output("DISK OK - free space: / 3326 MB (56%);\n")
    assert out.text == "DISK OK - free space: / 3326 MB (56%);"
    assert out.perfdata == () and out.long_text == ""


def test_output_text_and_perfdata():
    out = parse_output("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n")
    assert out.text == "DISK OK - free space: / 3326 MB (56%);"
    assert out.perfdata == (PerfData("/", 2643, "MB", Range(0, 5948), Range(0, 5958), 0, 5968),)


def test_output_long_text_without_perfdata():
    text = ("DISK OK - free space: / 3326 MB (56%);\n/ 15272 MB (77%);\n/boot 68 MB (69%);\n"
            "/home 69357 MB (27%);\n/var/log 819 MB (84%);\n")
    out = parse_output(text)
    assert out.text == "DISK OK - free space: / 3326 MB (56%);"
    assert out.long_text.splitlines() == ["/ 15272 MB (77%);", "/boot 68 MB (69%);",
                                          "/home 69357 MB (27%);", "/var/log 819 MB (84%);"]
    assert out.perfdata == ()


def test_output_perfdata_on_first_line_and_in_long_output():
    text = ("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
            "/ 15272 MB (77%);\n"
            "/boot 68 MB (69%);\n"
            "/home 69357 MB (27%);\n"
            "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
            "/home=69357MB;253404;253409;0;253414\n"
            "/var/log=818MB;970;975;0;980\n")
    out = parse_output(text)
    assert out.text == "DISK OK - free space: / 3326 MB (56%);"
    assert out.long_text.splitlines() == ["/ 15272 MB (77%);", "/boot 68 MB (69%);",
                                          "/home 69357 MB (27%);", "/var/log 819 MB (84%);"]
    assert [(p.label, p.value) for p in out.perfdata] == [
        ("/", 2643), ("/boot", 68), ("/home", 69357), ("/var/log", 818)]
    assert out.perfdata[3] == PerfData("/var/log", 818, "MB", Range(0, 970), Range(0, 975),
                                       0, 980)
    assert out.errors == 0


def test_output_empty_and_crlf():
    assert parse_output("") .text == ""
    out = parse_output("OK - fine | a=1\r\nmore\r\n")
    assert out.text == "OK - fine" and out.long_text == "more"
    assert [p.label for p in out.perfdata] == ["a"]


# -- properties of perfdata and output ------------------------------------------------

labels = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=20)
uoms = st.sampled_from(["", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"])
opt_ranges = st.one_of(st.none(), ranges())
opt_numbers = st.one_of(st.none(), finite)


@st.composite
def items(draw):
    value = draw(st.one_of(st.none(), finite))
    return PerfData(draw(labels), value, "" if value is None else draw(uoms),
                    draw(opt_ranges), draw(opt_ranges), draw(opt_numbers), draw(opt_numbers))


@given(st.lists(items(), max_size=6), st.sampled_from([" ", "  ", "\t", " \n "]))
def test_perfdata_round_trips(its, sep):
    r = parse_perfdata(sep.join(str(i) for i in its))
    assert r.errors == 0
    assert r.items == tuple(its)


@given(st.lists(items(), min_size=1, max_size=5),
       st.lists(st.sampled_from(["junk", "=1", "x=abc", "y=1;2;3;4;5;6", "z=1.2.3", "''=2"]),
                min_size=1, max_size=3),
       st.randoms())
def test_malformed_items_never_break_the_rest(its, junk, rnd):
    tokens = [str(i) for i in its]
    for j in junk:                      # anywhere, keeping the good items' order
        tokens.insert(rnd.randint(0, len(tokens)), j)
    r = parse_perfdata(" ".join(tokens))
    assert r.items == tuple(its)
    assert r.errors == len(junk)


@given(st.text(max_size=200))
def test_parse_perfdata_never_raises(text):
    r = parse_perfdata(text)
    assert r.errors >= 0
    assert all(i.label for i in r.items)


@given(st.text(max_size=300))
def test_parse_output_never_raises(text):
    out = parse_output(text)
    assert "\n" not in out.text


@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="|\n\r"),
               max_size=40),
       st.lists(items(), max_size=4), st.lists(items(), max_size=4))
def test_output_collects_perfdata_of_both_parts(text, first, later):
    output = f"{text} | {' '.join(map(str, first))}\nlong line\nlast | " + \
        "\n".join(map(str, later))
    out = parse_output(output)
    assert out.text == text.strip()
    assert out.perfdata == tuple(first) + tuple(later)
    assert out.long_text == "long line\nlast"


# -- units and metric names -----------------------------------------------------------------


@pytest.mark.parametrize(("uom", "factor", "unit"), [
    ("s", 1, "s"), ("ms", 1e-3, "s"), ("us", 1e-6, "s"), ("B", 1, "B"), ("KB", 1024, "B"),
    ("MB", 1024**2, "B"), ("GB", 1024**3, "B"), ("TB", 1024**4, "B"), ("%", 1, "%"),
    ("c", 1, "c"), ("", 1, ""), ("dBm", 1, "dBm"),
])
def test_base_units(uom, factor, unit):
    assert to_base_unit(uom) == (factor, unit)


@given(finite, uoms, ranges())
def test_in_base_units_scales_everything(value, uom, rng):
    factor, unit = to_base_unit(uom)
    item = PerfData("x", value, uom, rng, rng, value, value).in_base_units()
    assert item.uom == unit
    assert item.value == value * factor and item.min == value * factor
    assert item.warn == rng.scaled(factor)


@pytest.mark.parametrize(("label", "safe"), [
    ("load1", "load1"), ("/", "_"), ("/var/log", "_var_log"), ("Time Taken", "time_taken"),
    ("a.b", "a_b"), ("rta", "rta"), ("x--y", "x_y"), ("ÄÖ", "_"),
])
def test_safe_label(label, safe):
    assert safe_label(label) == safe


def test_perfdata_values_names_units_and_companions():
    out = parse_output("OK | time=250ms;1:2;@0.5:3;0;10 size=2KB;;~:4 n=U;5 status=1 x_2=1 x=2 x=3")
    values = dict(perfdata_values(out.perfdata, reserved=("status", "state")))
    assert values == {
        "time": 0.25, "time.warn": 0.002, "time.warn_low": 0.001,
        "time.crit": 0.003, "time.crit_low": 0.0005, "time.min": 0.0, "time.max": 0.01,
        "size": 2048.0, "size.crit": 4096.0,
        "n.warn": 5.0,
        "perf_status": 1.0,
        "x_2": 1.0, "x": 2.0, "x_3": 3.0,
    }


@given(st.lists(items(), max_size=8))
def test_perfdata_value_names_are_unique_and_safe(its):
    reserved = ("status", "state", "duration_seconds")
    names = [name for name, _ in perfdata_values(its, reserved)]
    bases = [n for n in names if "." not in n]
    assert len(set(bases)) == len(bases)
    assert not set(bases) & set(reserved)
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.") for n in names)


def test_quote_label():
    assert quote_label("a") == "a"
    assert quote_label("a b") == "'a b'"
    assert quote_label("it's") == "'it''s'"
    assert quote_label("a=b") == "'a=b'"


# -- fuzz: hostile plugin output -----------------------------------------------------------
#
# The contract: parse_output/parse_perfdata never raise, whatever the bytes (the
# exec probe decodes with errors="replace" first, as here); at most MAX_ITEMS
# items and MAX_PROBLEMS problem lines come out, and perfdata_values gives at
# most 7 values per item, with unique names.


def _reference_names(labels: list[str], reserved: tuple[str, ...]) -> list[str]:
    """The de-duplication rule as first written (quadratic, obviously right)."""
    used, out = set(reserved), []
    for label in labels:
        name = safe_label(label)
        if name in reserved:
            name = "perf_" + name
        unique, k = name, 2
        while unique in used:
            unique, k = f"{name}_{k}", k + 1
        used.add(unique)
        out.append(unique)
    return out


@given(st.lists(st.sampled_from(["x", "X", "x_2", "x_3", "x_2_2", "status", "perf_status",
                                 "y", "/", "_"]), max_size=60))
def test_linear_de_duplication_gives_the_same_names_as_the_first_rule(labels):
    reserved = ("status", "state")
    got = [n for n, _ in perfdata_values([PerfData(lb, 1.0) for lb in labels], reserved)]
    assert got == _reference_names(labels, reserved)


def _check_bounded(out) -> None:
    assert len(out.perfdata) <= MAX_ITEMS
    assert len(out.problems) <= MAX_PROBLEMS
    assert out.errors >= len(out.problems) and out.truncated >= 0
    assert "\n" not in out.text
    values = perfdata_values(out.perfdata, ("status", "state", "duration_seconds"))
    assert len(values) <= 7 * len(out.perfdata)
    bases = [n for n, _ in values if "." not in n]
    assert len(set(bases)) == len(bases)
    assert all(math.isfinite(v) for _, v in values)


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_and_stay_bounded(data):
    _check_bounded(parse_output(data.decode("utf-8", errors="replace")))


_odd_tokens = st.sampled_from([
    "a=1", "'a b'=2;3;4;5;6", "''=1", "'''=1", "'unterminated=1", "=", "a==1", "a=1e999",
    "a=-1e999", "a=nan", "a=inf", "a=U;U;U;U;U", "a=1;@~:;~:~;;", "a=1;;;;;;;", "a=0x10",
    "a=1;10:5", "a=1°C;1;2", "b=1MB;1KB:2GB;@3:4TB;0;1PB", "|", "||", "\r\n", "\t", "\x00",
    "\ufffd", "é=1", "a=1.", "a=.5", "a=+-1", "a=1ee1", "a=" + "9" * 400,
])


@given(st.lists(_odd_tokens, max_size=80), st.sampled_from([" ", "\n", "  ", "\t"]),
       st.text(max_size=30))
def test_odd_perfdata_never_raises_and_stays_bounded(tokens, sep, text):
    _check_bounded(parse_output(text + " | " + sep.join(tokens)))


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(_odd_tokens, st.integers(min_value=1, max_value=20000), st.sampled_from([" ", "\n"]),
       st.booleans())
def test_huge_lines_never_raise_and_stay_bounded(token, n, sep, first_line):
    perf = sep.join([token] * n)
    _check_bounded(parse_output(("OK | " if first_line else "OK\nlong |") + perf))


@given(st.lists(items(), max_size=30), st.integers(min_value=0, max_value=30))
def test_the_item_limit_keeps_the_first_items_and_counts_the_rest(its, limit):
    r = parse_perfdata(" ".join(str(i) for i in its), limit)
    assert r.items == tuple(its[:limit])
    assert r.truncated == max(0, len(its) - limit)
