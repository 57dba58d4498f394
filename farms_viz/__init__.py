"""farms-viz: raw and FARMS (Fixed-Aspect-Ratio Matrix Subsampling) eigenspectrum analysis of weights."""

from .config import Settings
from .errors import FarmsError
from .report import Report, analyze

__all__ = ["analyze", "Report", "Settings", "FarmsError"]
__version__ = "0.1.0"
