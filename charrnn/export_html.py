"""The page of `charrnn export RUN -o model.html`: to be written (issue 18)."""


def render_page(ckpt, weights="float32"):
    """The page, as a str."""
    raise NotImplementedError
