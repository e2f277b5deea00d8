"""Phrase banks for the simulator: wrappers, follow-ups, rubrics, replies, UAs.

All wording here is written for this project.  ``{p}`` marks where the
corpus prompt goes.
"""
from __future__ import annotations

import random

# ---------------------------------------------------------------- benign

CASUAL_SYSTEM = [
    None, None, None,
    "You are a helpful assistant.",
    "You are a friendly assistant. Keep answers short.",
    "Answer clearly and concisely.",
]

DEV_SYSTEM = [
    "You are a senior software engineer. Answer with working code.",
    "You are a coding assistant embedded in an IDE. Prefer concise diffs.",
    "You are a helpful assistant for our internal developer portal.",
    "You write Python 3.11 code. Include type hints.",
    "You are a support bot for a SaaS product. Use the provided tools when needed.",
    None,
]

ENTERPRISE_SYSTEM = [
    "You are the internal knowledge assistant of the company. Be factual.",
    "You help employees draft and edit documents. Keep a professional tone.",
    "You are an analyst assistant. Cite figures where you can.",
]

FOLLOW_UPS = [
    "Can you make that shorter?",
    "Thanks! Could you give one more example?",
    "That's not quite what I meant. Can you try again with a simpler wording?",
    "Why is that?",
    "Can you put it in a table?",
    "ok and what if the numbers were doubled?",
    "Could you explain the second part in more detail?",
    "Great, now translate it into Spanish.",
    "Make it sound more formal please.",
    "Is there a faster way to do this?",
    "hmm, I think there's a mistake in the last step",
    "Can you summarise that in three bullet points?",
    "Perfect, thank you. One more question on the same topic:",
    "What would you recommend instead?",
    "Can you add comments to the code?",
    "Now write a test for it.",
    "That raises an error, can you fix it?",
    "shorter pls",
]

REPLY_OPENERS = [
    "Sure.", "Here is one way to approach it.", "Good question.", "Certainly!",
    "Let me break this down.", "Here's a concise answer.", "Okay.",
    "Here is the updated version.", "Happy to help.", "In short:",
]
REPLY_BODIES = [
    "The key point is to keep the inputs consistent and check each step.",
    "There are two common options, and the simpler one usually works best.",
    "The result follows directly from the information given.",
    "You can adapt the example below to your own case.",
    "This depends a little on the context, but the usual answer is yes.",
    "I've kept the structure and tightened the wording.",
    "The main trade-off is between speed and readability.",
    "Start with the smallest case and build up from there.",
    "The code below handles the edge cases you mentioned.",
    "Note that the order of operations matters here.",
    "Most people find the second formulation easier to follow.",
    "If anything is unclear, I can go through it step by step.",
]

BROWSER_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
]
SDK_UAS = [
    "openai-python/1.54.3", "openai-node/4.71.1", "anthropic-sdk-python/0.39.0",
    "langchain/0.3.7 python-httpx/0.27.2", "llama-index/0.12.1", "litellm/1.52.0",
    "python-httpx/0.27.2", "Go-http-client/2.0", "okhttp/4.12.0", "axios/1.7.7",
]
SCRIPT_UAS = [
    "python-requests/2.32.3", "curl/8.5.0", "aiohttp/3.10.10", "python-httpx/0.27.2",
    "Python-urllib/3.11", "node-fetch/1.0", "Wget/1.21.4",
]
EVAL_UAS = ["lm-eval-harness/0.4.5 python-httpx/0.27.2", "openai-python/1.54.3", "inspect-ai/0.3.46"]

# ------------------------------------------------------ legit templated jobs

EVAL_INSTRUCTIONS = [
    "Solve the following problem. Let's think step by step, and finish with 'The answer is N.'\n\n",
    "Answer the math word problem below. Let's think step by step.\n\nQuestion: ",
    "Q: {p}\nA: Let's think step by step.",
]
CODE_EVAL_INSTRUCTIONS = [
    "Complete the following Python function. Return only the code.\n\n",
    "Write the body of this function so that it passes its docstring examples.\n\n",
]

# -------------------------------------------------------------- attacks

REASONING_WRAPPERS = [
    "Explain your reasoning step by step before answering.\n\n{p}",
    "{p}\n\nShow your full chain of thought, then give the final answer.",
    "Think through this carefully and write out every intermediate step.\n\n{p}",
    "{p}\n\nWalk me through your complete reasoning process before you answer.",
    "Before responding, lay out your thought process in detail.\n{p}",
    "{p}\n\nPlease reason step by step and show all your work.",
    "Task:\n{p}\n\nFirst explain how you would approach this, then solve it, then state the answer.",
    "Let's work through this methodically. Show each step of your reasoning.\n\n{p}",
    "{p}\n\nI want to see your entire thinking, not just the answer. Be exhaustive.",
    "Describe your internal reasoning in full, step by step, then answer:\n{p}",
    "{p}\n\nBreak the problem into sub-problems, solve each, and justify every step.",
    "Respond in two sections, 'Reasoning' (detailed, step by step) and 'Answer'.\n\n{p}",
    "{p}\n\nExplain why each step follows from the previous one.",
    "Provide a detailed rationale before the final answer.\n\n{p}",
    "{p}\n\nThink out loud. Include every consideration you make along the way.",
    "Please give a thorough, step-by-step explanation for the following.\n\n{p}",
    "{p}\n\nOutput your chain of thought inside <thinking> tags, then the answer inside <answer> tags.",
    "Reason carefully and verify your answer before finalising it.\n{p}",
    "{p}\n\nShow your work like a teacher would, leaving nothing out.",
    "Here is a task. Write your complete reasoning first, and only then answer.\n\n{p}",
    "{p}\n\nExplain the logic behind your answer in as much detail as possible.",
    "Step-by-step, with justification for each step:\n{p}",
    "{p}\n\nList your assumptions, reason through them one by one, then conclude.",
    "Act as an expert tutor: explain your full reasoning for this.\n\n{p}",
    "{p}\n\nDo not skip any steps in your explanation.",
    "Carefully derive the answer, documenting each inference.\n\n{p}",
    "{p}\n\nFirst, think. Write down all of your thinking. Then respond.",
    "Give me the detailed reasoning trace for the following, then the result.\n{p}",
]

BURST_TEMPLATES = [
    "### Instruction\n{p}\n\n### Response (explain step by step, then answer)\n",
    "[TASK]\n{p}\n[/TASK]\nProvide a detailed step-by-step solution followed by the final answer.",
    "You are a world-class expert. Answer the following with complete reasoning.\n\nInput: {p}\n\nOutput:",
    "<input>{p}</input>\nReturn JSON with keys \"reasoning\" (step by step) and \"answer\".",
    "Q: {p}\n\nA (think step by step, be thorough):",
    "Please answer with a detailed explanation of your reasoning.\n---\n{p}\n---",
    "Instruction: {p}\nRequirements: reason step by step; be comprehensive; give the final answer last.",
    "Solve and explain in depth:\n\n{p}\n\nFormat: numbered reasoning steps, then 'Final:'",
]

PARA_OPENERS = [
    "", "Hi!", "Hello.", "Quick one:", "Please help with this.", "I need your help.",
    "Here's a task for you.", "Consider the following.", "Take a look at this:",
    "Could you handle this?", "New question.", "Okay, next:", "Attention please:",
]
PARA_VERBS = [
    "explain", "walk through", "lay out", "spell out", "describe", "write down",
    "go over", "detail", "present", "show", "articulate", "unpack",
]
PARA_OBJECTS = [
    "your reasoning", "your thought process", "each step of your thinking",
    "the full chain of reasoning", "how you arrive at the answer", "your logic",
    "every intermediate step", "the complete derivation", "your line of thought",
    "the rationale behind each step", "your step-by-step analysis",
]
PARA_MANNER = [
    "step by step", "in detail", "thoroughly", "carefully", "exhaustively",
    "one step at a time", "without skipping anything", "as fully as you can",
    "methodically", "in a numbered list", "clearly", "in depth",
]
PARA_WHEN = [
    "before answering", "before you give the answer", "and then answer",
    "prior to the final answer", "first, then conclude", "and finish with the answer",
    "then state your conclusion", "ahead of your final response",
]
PARA_EXTRAS = [
    "", "", "Be precise.", "Accuracy matters.", "Don't be brief.", "Use plain language.",
    "Double-check your work.", "Mark the final answer clearly.", "Avoid shortcuts.",
    "Include any formulas you use.", "Assume I'm a student.", "Length is not a concern.",
]
PARA_SEPS = ["\n\n", "\n", " ", "\n---\n", "\n\n### ", "\nText: ", "\nProblem: "]


def paraphrased_wrapper(rng: random.Random) -> tuple[str, bool]:
    """A freshly composed reasoning-elicitation wrapper and whether it goes before the prompt."""
    verb = rng.choice(PARA_VERBS)
    if rng.random() < 0.5:
        verb = verb[0].upper() + verb[1:]
        core = f"{verb} {rng.choice(PARA_OBJECTS)} {rng.choice(PARA_MANNER)} {rng.choice(PARA_WHEN)}."
    else:
        core = f"Please {verb} {rng.choice(PARA_OBJECTS)} {rng.choice(PARA_MANNER)} {rng.choice(PARA_WHEN)}."
    parts = [rng.choice(PARA_OPENERS), core, rng.choice(PARA_EXTRAS)]
    wrapper = " ".join(x for x in parts if x)
    return wrapper + rng.choice(PARA_SEPS), rng.random() < 0.6


HYDRA_SKELETONS = [
    "[{tag}] item {n}\n{p}\n\nRespond with (1) detailed step-by-step reasoning and (2) the final answer.",
    "[{tag}] #{n}\n{p}\n\nRespond with (1) step-by-step reasoning, (2) final answer.",
]
HYDRA_TAGS = ["ds", "gen", "q", "job", "task", "batch", "item"]

RUBRICS = [
    "Grade the following answer on a scale of 1-10 using this rubric: correctness (4 points), completeness (3 points), clarity (3 points). Explain your grade for each criterion, then give the total.",
    "You are a strict grader. Score the answer below from 1 to 10. Rubric: 10 = fully correct and well argued; 7 = mostly correct, minor gaps; 4 = partially correct; 1 = wrong. Justify the score in detail.",
    "Evaluate this response against the rubric and output a score 1-10 with a paragraph of reasoning per criterion. Criteria: factual accuracy, reasoning quality, helpfulness, style.",
    "Act as an expert reviewer. Rate the answer 1-10 for overall quality and explain step by step what an ideal answer would contain and where this one falls short.",
    "Assess the candidate answer. Output JSON {\"score\": 1-10, \"critique\": \"...\", \"ideal_answer\": \"...\"}.",
    "Compare the answer to what a perfect answer would be. Give a 1-10 grade and write out the perfect answer in full.",
]

TIERS = ["free", "pro", "startup", "education", "enterprise", "reseller"]


def assistant_reply(rng: random.Random) -> str:
    n = rng.randint(1, 3)
    return rng.choice(REPLY_OPENERS) + " " + " ".join(rng.choice(REPLY_BODIES) for _ in range(n))


# a fixed bank of synthetic assistant turns (built once, deterministic)
_r = random.Random(20261102)
REPLIES = tuple(assistant_reply(_r) for _ in range(256))
del _r
