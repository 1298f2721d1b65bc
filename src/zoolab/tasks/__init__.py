"""One LightningModule per family. Each receives built components (backbone, adapter, head, loss,
optimiser and scheduler partials) and the class names, and exposes ``split_metrics`` for the runner."""
