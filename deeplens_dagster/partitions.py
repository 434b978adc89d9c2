"""One partition per tenant (dynamic), never one per image."""

import dagster as dg

TENANTS = "tenants"

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANTS)
