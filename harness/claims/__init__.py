"""Published claims (configs/claims/*.yaml) judged against ternbench results: the schema,
the evaluation, what differs from the published conditions, and how verdicts are worded."""
from .evaluate import (
    BASELINE_FRACTION_MIN,
    EXCEEDS,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    PARTLY,
    REPRODUCED,
    UNRELIABLE,
    Verdict,
    evaluate,
)
from .schema import METRICS, Claim, ClaimsError, load_claims
from .wording import range_text

__all__ = ["BASELINE_FRACTION_MIN", "EXCEEDS", "NOT_REPRODUCED", "NOT_TESTABLE", "PARTLY", "REPRODUCED",
           "UNRELIABLE", "Verdict", "evaluate", "METRICS", "Claim", "ClaimsError", "load_claims", "range_text"]
