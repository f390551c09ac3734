"""Command line: ``pharosd run | check-config | status | watch | test-alert | test-rules |
silence | --version``.

Exit codes (DESIGN.md): 0 clean stop or success, 1 bad config or usage,
70 the supervisor gave up, 3 ``status`` or ``silence`` found no running daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from pharosd import __version__
from pharosd.errors import ConfigError

if TYPE_CHECKING:
    from pharosd.config import LoadedConfig

EXIT_USAGE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (DESIGN.md), not 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _common() -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument("-c", "--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="config file (default: $PHAROS_CONFIG, else /etc/pharos.yaml if it "
                        "exists, else the embedded default)")
    p.add_argument("--log-level", default=argparse.SUPPRESS,
                   choices=("debug", "info", "warning", "error", "critical"),
                   help="lowest level logged (default: info)")
    p.add_argument("--log-format", default=argparse.SUPPRESS,
                   choices=("auto", "console", "logfmt", "json"),
                   help="console on a terminal, else logfmt with <N> priority prefixes "
                        "for the journal (default: auto)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="pharosd", parents=[common],
        description="Monitoring daemon for Linux hosts: statistics, probes, thresholds, "
                    "alerts and remote_write.")
    parser.add_argument("--version", action="version", version=f"pharosd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("run", parents=[common], help="run the daemon in the foreground")
    check = sub.add_parser("check-config", parents=[common],
                           help="validate a config file; exit 0, or 1 with every error")
    check.add_argument("path", nargs="?", help="config file (same as -c)")
    check.add_argument("-v", "--verbose", action="store_true",
                       help="list the files read (the main file and its drop-ins)")
    check.add_argument("--dump", action="store_true",
                       help="print the effective config (all files merged, defaults filled "
                            "in, secrets redacted) as YAML")
    status = sub.add_parser("status", parents=[common], help="show the running daemon's state")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--socket", metavar="PATH", help="control socket path")
    watch = sub.add_parser("watch", parents=[common],
                           help="print alert events as they happen, until interrupted")
    watch.add_argument("--json", action="store_true", help="one JSON object a line")
    watch.add_argument("--rule", metavar="GLOB", help="only rules matching this glob")
    watch.add_argument("--socket", metavar="PATH", help="control socket path")
    test = sub.add_parser("test-alert", parents=[common],
                          help="send a synthetic firing and resolved alert through the sinks")
    test.add_argument("--sink", metavar="NAME", help="only this sink")
    test.add_argument("--level", choices=("info", "warning", "critical"), default="warning",
                      help="the level of the synthetic alert (default: warning)")
    rules = sub.add_parser(
        "test-rules", parents=[common],
        help="run rule tests (input series, expected alerts) against a config's thresholds")
    rules.add_argument("files", nargs="+", metavar="FILE", help="rule-test file (YAML)")
    from pharosd.control.silenceargs import add_silence_arguments

    add_silence_arguments(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pharosd.lazyimport import defer

    # Imported and not used: asyncio by structlog, ssl by http.client (without https),
    # bz2 and lzma by shutil (argparse's help width). Each runs on its first use.
    for name in ("asyncio", "ssl", "bz2", "lzma"):
        defer(name)
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    from pharosd import logs

    logs.configure(getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"))
    if command == "status":
        from pharosd.control.cli import status_main

        return status_main(args)
    if command == "watch":
        from pharosd.control.cli import watch_main

        return watch_main(args)
    from pharosd.config import load_config, resolve_config_path

    if command == "test-rules":
        from pharosd.testrules import run_files

        return run_files(args.files, config=getattr(args, "config", None), environ=os.environ,
                         out=sys.stdout, err=sys.stderr)
    if command == "silence":
        from pharosd.control.silence import silence_main

        return silence_main(args, state_dir=_state_dir_for_socket(args))

    cli_path = getattr(args, "path", None) or getattr(args, "config", None)
    path = resolve_config_path(cli_path, os.environ)
    try:
        loaded = load_config(path, environ=os.environ)
    except ConfigError as exc:
        mark = logs.journal_prefix(sys.stderr, "error")   # "<3>" under systemd only
        for issue in exc.issues:
            print(f"{mark}{issue}", file=sys.stderr)
        n = len(exc.issues)
        print(f"{mark}{loaded_name(path)}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return EXIT_USAGE
    if command == "check-config":
        return check_config_report(loaded, verbose=args.verbose, dump=args.dump)
    if command == "test-alert":
        from pharosd.alerting.routing import route_of
        from pharosd.sinks.testalert import run_test_alert

        return run_test_alert(loaded.config, args.sink, sys.stdout, level=args.level,
                              skip=lambda cfg, event: route_of(cfg).why_not(event))
    from pharosd.daemon import Daemon

    code = Daemon(loaded, config_path=path).run()
    # Workers are joined (or timed out) by now; a probe thread stuck in a
    # plugin must not hold the exit, so leave without the interpreter's joins.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def check_config_report(loaded: LoadedConfig, *, verbose: bool, dump: bool) -> int:
    """``check-config``'s output for a valid config: what all files add (``-v``: each file
    and what it adds), or with ``--dump`` the effective config."""
    if dump:
        from pharosd.config.dump import dump_config

        sys.stdout.write(dump_config(loaded.config))
        return 0
    c = loaded.config
    drop_ins = len(loaded.files) - 1
    also = f"; {drop_ins} drop-in{'s' if drop_ins != 1 else ''}" if drop_ins > 0 else ""
    print(f"{loaded.source}: ok ({len(c.statistics)} statistics, {len(c.probes)} probes, "
          f"{len(c.thresholds)} thresholds, {len(c.sinks)} sinks, "
          f"{len(c.maintenance)} maintenance windows{also})")
    if verbose:
        from pharosd.config.include import describe_added

        for path, added in zip(loaded.files, loaded.added, strict=False):
            print(f"  read {path}: {describe_added(added)}")
        if not loaded.files:
            print(f"  read {loaded.source}")
    return 0


def _state_dir_for_socket(args: argparse.Namespace) -> str | None:
    """The config's state directory, where a daemon run by hand may have its socket;
    None when the config cannot be read (the socket is looked for elsewhere then)."""
    from pharosd.config import load_config, resolve_config_path

    path = resolve_config_path(getattr(args, "config", None), os.environ)
    try:
        return load_config(path, environ=os.environ).config.resolved_state_dir()
    except (ConfigError, OSError):
        return None


def loaded_name(path: str | None) -> str:
    return path or "<embedded default>"


if __name__ == "__main__":
    sys.exit(main())
