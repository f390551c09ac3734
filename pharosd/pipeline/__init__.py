"""Sample shipping: hot buffer, disk spill and the remote_write uplink."""
