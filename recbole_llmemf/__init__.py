"""recbole-llmemf: LLM-EMF (LLM-enhanced multimodal cross-domain sequential recommendation) for RecBole.

Importing the package applies the compatibility fixes and registers ``LLMEMF`` with RecBole, so that
``get_model('LLMEMF')``, ``Config(model='LLMEMF', ...)`` and ``run_recbole(model='LLMEMF', ...)`` work.
"""

from recbole_llmemf import compat

compat.apply()

from recbole_llmemf.model import LLMEMF  # noqa: E402
from recbole_llmemf.registry import register  # noqa: E402

__version__ = "0.1.0"
__all__ = ["LLMEMF", "register", "__version__"]

register()
