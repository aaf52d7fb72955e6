"""The command-line tools behind `spidepth`: predict, deploy, the benchmarks. The library (models, training,
inference) does not import them."""
