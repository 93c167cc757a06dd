"""Datasets: what a source looks like (spec), getting it (fetch, archive, kaggle), checking it (validate)."""
