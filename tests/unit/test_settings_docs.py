"""docs/settings.md is generated from the models and never stale."""

from roles import docs
from roles._settings import Settings


def test_docs_settings_md_is_up_to_date():
    assert docs.DOCS_FILE.read_text() == docs.render(), "docs/settings.md is stale: run python -m roles.docs"


def test_every_key_has_a_meaning():
    def walk(model, key=""):
        for name, field in model.model_fields.items():
            assert field.description, f"{key}{name} has no Field(description=...)"
            sub = docs._model_of(field)
            if sub is not None:
                walk(sub, f"{key}{name}.")

    walk(Settings)
