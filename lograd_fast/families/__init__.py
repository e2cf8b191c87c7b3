"""One file per family: its parameter record, scalar maths, numpy maths and public class."""

from .categorical import Categorical
from .normal import Normal

__all__ = ["Normal", "Categorical", "FAMILIES"]

#: public family classes by name (``lograd-fast info`` lists them)
FAMILY_CLASSES = {cls.__name__: cls for cls in (Normal, Categorical)}
#: family name -> its unconstrained parameters
FAMILIES = {name: cls.family.param_names for name, cls in FAMILY_CLASSES.items()}
