"""dataset-qa: quality assurance and dataset health for computer-vision datasets.

``import qa`` stays light: no torch, faiss, open_clip or streamlit is imported here.
"""

from qa.dataset import Dataset, DatasetError
from qa.io import load
from qa.validation import ValidationReport, validate

__all__ = ["Dataset", "DatasetError", "ValidationReport", "load", "validate"]
__version__ = "0.1.0"
