"""One incident recipe per runbook, found by id as the pages are: ``b2.py`` causes B-2 (its ``RECIPE``)."""
