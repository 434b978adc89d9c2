"""Names and labels given to the admin API are stored as they can be shown safely."""

from __future__ import annotations

import json

from search_api.schemas import KeyCreate, TenantCreate


def test_a_tenant_name_loses_controls_bidi_and_lone_surrogates() -> None:
    body = json.loads('{"tenantId": "acme", "name": " Ac\\u202eme\\u0000 \\ud800Corp\\u2028 "}')
    assert TenantCreate.model_validate(body).name == "Acme Corp"


def test_a_key_label_is_cleaned_the_same_way() -> None:
    assert KeyCreate.model_validate({"label": "ci\u200f\x1b[2J"}).label == "ci[2J"
