"""Built-in statistics (psutil and /proc) and the collector that polls them."""
