"""What the adjustment codes the bundled rules use mean, in a few plain words of our own.

The Claim Adjustment Reason Codes (CARC) and Remittance Advice Remark Codes (RARC) are
external code lists maintained for X12; these are short paraphrases written for billing staff,
not the lists' text. A code missing here is shown with a pointer to the published list.
"""

from __future__ import annotations

CARC = {
    "4": "the modifier is missing or does not fit the procedure",
    "5": "the procedure does not fit the place of service",
    "6": "the procedure does not fit the patient's age",
    "11": "the diagnosis does not support the procedure",
    "16": "the claim lacks information the payer needs, or has a billing error",
    "18": "the same service was already billed (a duplicate)",
    "96": "not covered by the payer",
    "97": "paid as part of another service on the claim (bundled)",
    "150": "the record does not support this level of service",
    "151": "the record does not support this many services, or this often",
    "152": "the record does not support this length of service",
    "181": "the procedure code was not valid on the date of service",
    "182": "the modifier was not valid on the date of service",
    "185": "this provider may not bill this service",
    "197": "a prior authorization was needed and is missing",
    "204": "the patient's plan does not cover this service",
    "236": "this code is not paid with another code billed for the same patient and day (NCCI)",
    "272": "the payer's coverage conditions for this service were not met",
    "B15": "this add-on is paid only with the service it adds to, which is not billed",
}

RARC = {
    "M15": "services billed apart are parts of one procedure",
    "M51": "the procedure code is missing or not valid",
    "M62": "the authorization number is missing or not valid",
    "M77": "the place of service is missing or not valid",
    "N20": "not paid apart from another service",
    "N56": "the procedure code is not valid for the date of service",
    "N95": "this provider type may not bill this service",
    "N111": "only a duplicate-service finding can be appealed",
    "N122": "an add-on code cannot be billed on its own",
    "N129": "not payable at the patient's age",
    "N130": "check the plan's benefit documents for coverage",
    "N163": "the medical record does not support the code billed",
    "N362": "more units than allowed",
    "N424": "the patient's location does not qualify for this kind of payment",
    "N640": "more services than allowed in the period",
    "N776": "not covered when furnished by telehealth",
    "N822": "a required procedure modifier is missing",
    "N823": "a procedure modifier is incomplete or not valid",
}


def carc_text(code: str | None) -> str:
    if not code:
        return ""
    return CARC.get(code, "see the published CARC list")


def rarc_text(code: str) -> str:
    return RARC.get(code, "see the published RARC list")
