"""The REST API (issue 11): a thin face over the features' repositories, schemas and services,
beside the CLI. `recoup serve` starts it (`recoup.api.app:create_app`)."""
