import uuid

import pytest

from deeplens.naming import (
    InvalidTenantId,
    collection_alias,
    physical_collection,
    point_id,
    validate_tenant_id,
)


@pytest.mark.parametrize("good", ["acme-corp", "a", "t1", "a" * 63, "0-9"])
def test_valid_tenant_ids(good: str) -> None:
    assert validate_tenant_id(good) == good


@pytest.mark.parametrize("bad", ["", "Acme", "acme_corp", "-acme", "acme-", "a" * 64, "a b", "ä"])
def test_invalid_tenant_ids(bad: str) -> None:
    with pytest.raises(InvalidTenantId, match="lower-case letters"):
        validate_tenant_id(bad)


def test_collection_naming_follows_the_seeds() -> None:
    assert collection_alias("acme-corp", "resnet50") == "tenant_acme-corp_resnet50_vectors"
    assert physical_collection("acme", "m", 7) == "tenant_acme_m_vectors_v7"


def test_point_ids_are_image_ids() -> None:
    image_id = uuid.uuid4()
    assert point_id(image_id) == str(image_id) == point_id(str(image_id).upper())
