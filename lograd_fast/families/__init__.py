"""One file per family: its parameter record, scalar maths, numpy maths and public class."""

from .bernoulli import Bernoulli
from .beta import Beta
from .categorical import Categorical
from .dirichlet import Dirichlet
from .exponential import Exponential
from .gamma import Gamma
from .laplace import Laplace
from .lognormal import LogNormal
from .multi_categorical import MultiCategorical
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .poisson import Poisson
from .student_t import StudentT
from .tanh_normal import TanhNormal

__all__ = [
    "Bernoulli",
    "Beta",
    "Categorical",
    "Dirichlet",
    "Exponential",
    "FAMILIES",
    "FAMILY_CLASSES",
    "Gamma",
    "Laplace",
    "LogNormal",
    "MultiCategorical",
    "MultivariateNormal",
    "Normal",
    "Poisson",
    "StudentT",
    "TanhNormal",
]

#: public family classes by name (``lograd-fast info`` lists them)
FAMILY_CLASSES = {cls.__name__: cls for cls in (
    Normal, Categorical, Bernoulli, Poisson, Exponential, LogNormal, Laplace, TanhNormal,
    Gamma, Beta, Dirichlet, StudentT, MultivariateNormal, MultiCategorical)}
#: family name -> its unconstrained parameters
FAMILIES = {name: cls.family.param_names for name, cls in FAMILY_CLASSES.items()}
