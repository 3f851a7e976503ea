"""The rails' catch rate on a labelled corpus (``python -m bench.efficacy``)."""
