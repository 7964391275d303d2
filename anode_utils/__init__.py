"""anode_utils: the models, data, training loops, NFE counters and plots of the book
*Augmented Neural ODEs, reproduced*."""

from . import experiments, notebook, plots, report, stats, verdicts
from .data import (
    angular_split,
    batches,
    concentric_spheres,
    grid_2d,
    map_1d,
    separable_spheres,
    shifted_sines,
)
from .experiments import (
    DEFAULTS,
    histories,
    load_model,
    make_config,
    make_data,
    make_model,
    run_toy,
    seed_configs,
    summarize,
)
from .fields import CountingField, MLPField
from .models import ODENet, ResNet, count_parameters
from .nfe import nfe, read_and_reset_nfe, reset_nfe
from .ode import ODEBlock, SolverError, augment
from .parallel import run_parallel
from .training import (
    FeatureSnapshots,
    History,
    ProgressBar,
    Resume,
    evaluate,
    train,
)

__version__ = "0.1.0"
from . import (
    claims,
    conv,
    image_results,
    images,
    plots_images,
    plots_theory,
    theory,
)
from .image_results import load_image_results
from .resources import available_results, results_path
from .toy_results import (
    load_results,
    result_finals,
    result_histories,
    result_nfe_ratios,
    result_summaries,
)
