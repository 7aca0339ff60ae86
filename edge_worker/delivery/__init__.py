"""Delivery: a verified local sub-task becomes a pushed branch and a GitHub pull request."""
