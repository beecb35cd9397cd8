"""GET /styles: the style catalogue, for the app's style picker."""

from __future__ import annotations

from flask_smorest import Blueprint

from bff.tasks.styles import STYLES
from bff.web.schemas import StyleListResponse

blp = Blueprint("styles", __name__, url_prefix="/styles", description="Styles that rewrite a prompt.")


@blp.route("")
@blp.response(200, StyleListResponse)
def list_styles():
    """List styles

    Pass a style's `name` as `style` to a generation endpoint.
    """
    return {"styles": list(STYLES.values())}
