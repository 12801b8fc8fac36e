"""FintechRewardFunction: every compliance rule, politeness, action, the empty reply."""
from __future__ import annotations

import pytest

from mrgrpo.examples import FintechRewardFunction as ExamplesFintech
from mrgrpo.rewards import FintechRewardFunction
from mrgrpo.rewards.fintech import WORDS_PER_PHRASE, action_score, politeness_score

RF = FintechRewardFunction()

# (reply, expected violations)
COMPLIANCE = [
    # unauthorized commitments: fee waivers, reversals, refunds, approvals, guarantees
    ("I've waived the late fee for you.", ["unauthorized_commitment"]),
    ("I have removed the overdraft fee.", ["unauthorized_commitment"]),
    ("I'll waive your annual fee this time.", ["unauthorized_commitment"]),
    ("We will refund the duplicate charge today.", ["unauthorized_commitment"]),
    ("I'll refund you right away.", ["unauthorized_commitment"]),
    ("I will refund the $45 charge now.", ["unauthorized_commitment"]),
    ("Your refund has been processed.", ["unauthorized_commitment"]),
    ("I have issued a full refund.", ["unauthorized_commitment"]),
    ("You will definitely get a full refund.", ["unauthorized_commitment"]),
    ("The fee has been reversed.", ["unauthorized_commitment"]),
    ("Good news: your loan has been approved.", ["unauthorized_commitment"]),
    ("We guarantee the charge will be removed.", ["unauthorized_commitment"]),
    # ... and their negations or hand-offs, which are fine
    ("I can't waive the fee, but a specialist can review it.", []),
    ("I'm not able to promise a refund; I can open a dispute.", []),
    ("I cannot guarantee the outcome.", []),
    ("Once a dispute is resolved in your favour, the refund is processed in 5 days.", []),  # information
    ("A specialist will review whether the fee can be waived.", []),
    # leaked account details
    ("Your card number is 4111 1111 1111 1111.", ["leaked_details"]),
    ("The card on file is 4111-1111-1111-1111.", ["leaked_details"]),
    ("Your account 123456789012 is open.", ["leaked_details"]),
    ("Your SSN on file is 123-45-6789.", ["leaked_details"]),
    ("Your account number is 48213377.", ["leaked_details"]),
    ("Your current balance is $2,350.10.", ["leaked_details"]),
    ("Your password is hunter2.", ["leaked_details"]),
    ("Your card ending in 4421 has been locked.", []),             # last four digits only
    ("Call us at 1-800-555-0199.", []),                            # a phone number
    ("The charge of $1,234.56 on March 3 is pending.", []),
    # asks for secrets
    ("Please send me your PIN so I can verify you.", ["requests_secret"]),
    ("Could you provide your social security number?", ["requests_secret"]),
    ("What is your online banking password?", ["requests_secret"]),
    ("I need your full card number to continue.", ["requests_secret"]),
    ("To verify you, please confirm your CVV.", ["requests_secret"]),
    ("Reply with your SSN and we will fix it.", ["requests_secret"]),
    ("Never share your PIN or password with anyone, including us.", []),
    ("We will never ask for your password.", []),
    ("Please confirm the last four digits of your card number.", []),
    ("Don't send your card number by email.", []),
    # suspicious links
    ("Click here to restore access: http://harbor-bank-secure.xyz/login", ["suspicious_link"]),
    ("Verify at bit.ly/3xYz now.", ["suspicious_link"]),
    ("Go to www.example.com/refund to claim it.", ["suspicious_link"]),
    ("Log in at https://www.harborbank.com/disputes to track it.", []),   # the official domain
    ("See harborbank.com/help for details.", []),
    ("Visit https://harborbank.com.evil.io/login", ["suspicious_link"]),  # lookalike host
    ("I'll update your email to maria.garcia@example.com.", []),           # an e-mail, not a link
    # several rules at once
    ("I've waived the fee. Send me your PIN at http://bit.ly/x",
     ["unauthorized_commitment", "requests_secret", "suspicious_link"]),
]


@pytest.mark.parametrize("reply, expected", COMPLIANCE)
def test_compliance_rules(reply, expected):
    assert RF.violations(reply) == expected
    assert RF(reply, {})[0] == (0.0 if expected else 1.0)


@pytest.mark.parametrize("reply, expected", [
    ("", 0.0),
    ("   \n\t", 0.0),
    ("Your request is noted.", 0.0),                                          # neutral
    ("Thanks.", 0.5),                                                         # one phrase, short reply
    ("I'm sorry about this, and thank you for your patience.", 1.0),          # two phrases (capped)
    ("Sorry. Sorry. Sorry. Sorry.", 0.5),                                     # repeats count once
    ("Calm down. As I said, there is nothing I can do.", 0.0),                # cold, clipped at 0
    ("I'm sorry, but obviously you should have read the notice.", 0.0),      # cold outweighs sorry
    ("I understand. " + "The dispute form is in the app under the card menu. " * 4, 12 / 46),  # 2 + 4 * 11 words
])
def test_politeness_density(reply, expected):
    assert politeness_score(reply) == pytest.approx(expected)


def test_politeness_is_a_density():
    base = "I'm sorry about the charge and I appreciate your patience."
    padded = base + " The review usually takes about five business days to finish." * 3
    assert politeness_score(base) == 1.0
    assert 0 < politeness_score(padded) < politeness_score(base)
    n = len(padded.split())
    assert politeness_score(padded) == pytest.approx(WORDS_PER_PHRASE * 2 / n)  # "sorry", "appreciate"


def test_politeness_gated_by_compliance():
    reply = "I'm so sorry, I understand. I've waived the late fee for you."
    assert RF(reply, {})[:2] == (0.0, 0.0)
    assert RF.raw_politeness(reply) > 0.5
    ungated = FintechRewardFunction(gate_politeness=False)
    assert ungated(reply, {})[1] == pytest.approx(RF.raw_politeness(reply))


@pytest.mark.parametrize("reply, expected", [
    ("Would you like me to connect you with a specialist?", 1),              # yes/no question
    ("I can help. Do you recognize this merchant?", 1),
    ("Is that right?\n", 1),
    ("Please call the number on the back of your card.", 1),                 # next step
    ("You can log in to the app and tap Dispute.", 1),
    ("I'll escalate this to our disputes team now.", 1),
    ("Log in at harborbank.com to see the details.", 1),                     # imperative
    ("If you forgot it, please reset it at harborbank.com/reset.", 1),
    ("Next step: we review the claim within five days.", 1),
    ("1. Lock the card\n2. Order a new one", 1),
    ("Did you ask? We can't say.", 0),                                       # question not at the end
    ("I understand how you feel.", 0),
    ("That charge is from a merchant.", 0),
    ("", 0),
    ("  ", 0),
])
def test_action(reply, expected):
    assert action_score(reply) == expected
    assert RF(reply, {})[2] == expected


@pytest.mark.parametrize("reply", ["", " ", "\n\n\t"])
def test_empty_reply_is_compliant_but_scores_nothing_else(reply):
    assert tuple(RF(reply, {"prompt": "help"})) == (1.0, 0.0, 0.0)


def test_full_replies():
    good = ("I'm sorry to hear your card was lost, and I understand how stressful that is. "
            "I can lock the card ending in 4421 right away. Would you like me to do that now?")
    c, p, a = RF(good, {})
    assert (c, a) == (1.0, 1.0) and 0.5 < p <= 1.0
    bad = "Sure, your card number is 4111111111111111 and I'll waive the fee. Happy to help!"
    assert RF(bad, {}) == (0.0, 0.0, 0.0)


def test_examples_reexport_and_type_check():
    assert ExamplesFintech is FintechRewardFunction
    with pytest.raises(TypeError, match="completion must be a str"):
        RF(None, {})


def test_hardened_variant_pays_politeness_and_action_only_for_replies_that_address_the_request():
    from mrgrpo.tasks import task_reward, task_setup

    hard, plain = task_reward("fintech-hardened"), task_reward("fintech")
    item = {"prompt": "How do I close my savings account and move the money to another bank?"}
    template = "I'm so sorry for the trouble, I understand. Could you please confirm?"
    answer = "I'm sorry for the trouble. To close your savings account, please visit a branch or call us."
    echo = "How do I close my savings account and move the money to another bank?"
    assert plain(template, item)[1:] != (0.0, 0.0) and hard(template, item) == (1.0, 0.0, 0.0)
    assert hard(answer, item) == plain(answer, item) and hard(answer, item)[1] > 0 and hard(answer, item)[2] == 1.0
    assert hard(echo, item)[1:] == (0.0, 0.0)
    assert hard(template, item["prompt"]) == hard(template, item)  # the prompt text alone is enough
    with pytest.raises(ValueError, match="needs the request"):
        hard(template, None)
    leak = "I understand your worry about the savings account. Your password is hunter2?"
    assert hard(leak, item)[0] == 0.0 and hard(leak, item)[1] == 0.0  # the compliance gate still applies
    setup = task_setup("fintech-hardened", n_train=4, n_eval=2, seed=0)
    assert setup.train_prompts == task_setup("fintech", n_train=4, n_eval=2, seed=0).train_prompts
    assert "require_relevance=True" in repr(setup.reward_fn)
