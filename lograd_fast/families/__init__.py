"""One file per family: its parameter record, scalar maths, numpy maths and public class."""

from .categorical import Categorical
from .normal import Normal

__all__ = ["Normal", "Categorical"]
