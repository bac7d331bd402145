"""verify_access_token under other configurations: audience, issuer, and the HS256 default."""

from __future__ import annotations

import pytest

from realtime.tokens import AuthFailure, verify_access_token
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return factories.make_user("alice")


@pytest.fixture
def audience_and_issuer(settings):
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "AUDIENCE": "tripsage",
        "ISSUER": "https://id.example",
    }


def _reason(token: str) -> str:
    with pytest.raises(AuthFailure) as failure:
        verify_access_token(token)
    return str(failure.value.reason)


def test_configured_audience_and_issuer_are_required_and_checked(alice, audience_and_issuer):
    good = factories.signed(factories.claims_for(alice, aud="tripsage", iss="https://id.example"))
    assert verify_access_token(good).user_id == str(alice.pk)
    wrong_aud = factories.signed(factories.claims_for(alice, aud="other", iss="https://id.example"))
    assert _reason(wrong_aud) == "invalid_audience"
    wrong_iss = factories.signed(factories.claims_for(alice, aud="tripsage", iss="https://evil"))
    assert _reason(wrong_iss) == "invalid_issuer"
    no_aud = factories.signed(factories.claims_for(alice, iss="https://id.example"))
    assert _reason(no_aud) == "missing_claim"


def test_unconfigured_audience_is_not_checked(alice):
    token = factories.signed(factories.claims_for(alice, aud="anything"))
    assert verify_access_token(token).user_id == str(alice.pk)


def test_hs256_deployments_refuse_rs256_tokens(alice, settings):
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ALGORITHM": "HS256",
        "SIGNING_KEY": "k" * 64,
        "VERIFYING_KEY": "",
    }
    good = factories.signed(factories.claims_for(alice), key="k" * 64, algorithm="HS256")
    assert verify_access_token(good).user_id == str(alice.pk)
    assert _reason(factories.signed(factories.claims_for(alice))) == "invalid_algorithm"
    forged = factories.signed(factories.claims_for(alice), key="x" * 64, algorithm="HS256")
    assert _reason(forged) == "invalid_signature"
    assert _reason(
        factories.signed(factories.claims_for(alice), key="k" * 64, algorithm="HS512")
    ) == ("invalid_algorithm")
