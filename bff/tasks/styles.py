"""The style catalogue: the looks the app offers, and how each rewrites a prompt.

This is the only place styles are defined. The schemas validate against ``STYLES``,
``GET /styles`` lists it, and the workers call ``styled_prompt`` before a provider call.
Tripo prompts describe an object to be 3D-printed; OpenAI prompts describe a 2D concept
image of that object, so each style carries one template per provider.
"""

from __future__ import annotations

from dataclasses import dataclass

from .record import Service


@dataclass(frozen=True)
class Style:
    name: str
    label: str
    description: str
    tripo_template: str
    openai_template: str

    def template_for(self, provider: Service) -> str:
        return {Service.TRIPO: self.tripo_template, Service.OPENAI: self.openai_template}[provider]


_CATALOGUE = (
    Style(
        name="realistic",
        label="Realistic",
        description="True-to-life proportions and surface detail.",
        tripo_template="{prompt}, realistic proportions, detailed true-to-life surfaces, solid printable form",
        openai_template="{prompt}, photorealistic product render, natural lighting, neutral background",
    ),
    Style(
        name="cartoon",
        label="Cartoon",
        description="Rounded, playful shapes with exaggerated features.",
        tripo_template="{prompt}, cartoon style, rounded chunky shapes, exaggerated features, smooth surfaces",
        openai_template="{prompt}, cartoon character concept art, bold outlines, bright flat colours",
    ),
    Style(
        name="low-poly",
        label="Low poly",
        description="Faceted geometry with few, flat polygons.",
        tripo_template="{prompt}, low-poly style, large flat facets, simple geometric forms",
        openai_template="{prompt}, low-poly 3D art, faceted geometric shapes, flat shading",
    ),
    Style(
        name="sculpture",
        label="Sculpture",
        description="A single-material statue, like carved stone or cast bronze.",
        tripo_template="{prompt}, classical sculpture, single material, carved stone look, on a simple base",
        openai_template="{prompt}, museum sculpture photograph, marble statue, studio lighting",
    ),
    Style(
        name="toy",
        label="Toy figure",
        description="A sturdy collectible figure with a stable base, good for printing.",
        tripo_template="{prompt}, collectible toy figure, sturdy thick parts, stable flat base, no thin spikes",
        openai_template="{prompt}, vinyl toy figure concept, studio product shot, soft shadows",
    ),
    Style(
        name="miniature",
        label="Tabletop miniature",
        description="A detailed gaming miniature on a round base.",
        tripo_template="{prompt}, tabletop gaming miniature, crisp details, standing on a round base",
        openai_template="{prompt}, tabletop miniature concept art, painted figure, round base",
    ),
)

STYLES: dict[str, Style] = {style.name: style for style in _CATALOGUE}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)


def styled_prompt(prompt: str, style_name: str | None, provider: Service) -> str:
    """The prompt as sent to ``provider``: unchanged without a style."""
    if not style_name:
        return prompt
    return STYLES[style_name].template_for(provider).format(prompt=prompt)
