"""Reports: tables, figures and HTML pages written from results files (never recomputing results)."""

from eoreps.report.html import Section, write_report
from eoreps.report.tables import markdown_table, mean_std_table

__all__ = ["Section", "write_report", "markdown_table", "mean_std_table"]
