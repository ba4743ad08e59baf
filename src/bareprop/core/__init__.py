"""The post's story: layers and losses (the math), initialisers, the net that chains them, the
optimizers, and the training loop. Everything else in bareprop is built around this package and is
tested against it; nothing here knows about files, the command line, threads or charts."""
