"""The command line face: parse input, call workflows and views, render output or errors."""
