"""DVC stage `report`: the offline report page ``report/index.html``; see :func:`hmspar.pipeline.page.report_page`."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.pipeline import page as pipeline


def _run(argv: list[str]) -> None:
    print(f"report: wrote {pipeline.report_page(load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.report", n_args=0)
