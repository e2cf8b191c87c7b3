"""One file per family: its parameter record, scalar maths, numpy maths and public class."""

from .bernoulli import Bernoulli
from .categorical import Categorical
from .exponential import Exponential
from .laplace import Laplace
from .lognormal import LogNormal
from .normal import Normal
from .poisson import Poisson
from .tanh_normal import TanhNormal

__all__ = [
    "Bernoulli",
    "Categorical",
    "Exponential",
    "FAMILIES",
    "FAMILY_CLASSES",
    "Laplace",
    "LogNormal",
    "Normal",
    "Poisson",
    "TanhNormal",
]

#: public family classes by name (``lograd-fast info`` lists them)
FAMILY_CLASSES = {cls.__name__: cls for cls in (
    Normal, Categorical, Bernoulli, Poisson, Exponential, LogNormal, Laplace, TanhNormal)}
#: family name -> its unconstrained parameters
FAMILIES = {name: cls.family.param_names for name, cls in FAMILY_CLASSES.items()}
