"""safeload's own rebuilders, one module per family. Each framework is imported only inside its module."""
