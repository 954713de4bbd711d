"""Audit: per-item data-quality checks (image and text defects, label errors) that score items without removing them."""
