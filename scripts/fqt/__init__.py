"""fqt: host tooling for fully quantized on-device training on Cortex-M."""

__version__ = "0.1.0"
