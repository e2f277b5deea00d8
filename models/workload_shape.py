"""Workload shape: does an account transform content it is given, or harvest content it asks for?

An extractor sends short questions and wants long answers back: the answers are the product it
takes away, so its output tokens run at several times its input (2-8x in every simulated attack
family). A transformation product (explain this article, analyse these reviews, answer from this
document) sends long pasted input and gets a bounded answer about it: output at or below its
input, a few hundred tokens per request. The shape is read from token counts the gateway reports,
not from words, so rephrasing does not move it; padding every question with pasted text does, at
the price of paying for that input, and only while the answers stay short (an answer of
``LONG_ANSWER_TOKENS`` or more is worth distilling whatever came before it).

Scoring (``scoring.evidence``) uses :meth:`WorkloadShape.relief` to temper the breadth findings
(capability sweep, output harvest) of transformation-shaped accounts: content that users paste
covers many topics, and a system prompt that asks for reasoning is how such products are built.
:meth:`WorkloadShape.harvest` is the other end (short questions, answers at several times their
length): it stands in for long answers in the output-harvest finding when answers stay under the
long-answer line. Crisp findings (logprob probing, grader abuse, reasoning harvest with long answers) and end-user
findings are not tempered.

>>> shape = WorkloadShape()
>>> shape.transformation(input_per_request=800.0, output_per_request=260.0)   # document Q&A
1.0
>>> shape.transformation(input_per_request=120.0, output_per_request=650.0)   # a sweep
0.0
>>> shape.transformation(input_per_request=820.0, output_per_request=840.0)   # padded, long answers
0.0
>>> shape.transformation(input_per_request=0.0, output_per_request=200.0)     # input not reported
0.0
>>> round(shape.harvest(input_per_request=110.0, output_per_request=374.0), 2)   # ~350-token answers
0.83
>>> shape.harvest(input_per_request=220.0, output_per_request=260.0)   # chat
0.0
>>> round(shape.relief(1.0, relief=0.6), 2)
0.4
"""
from __future__ import annotations

from dataclasses import dataclass

from .ramps import falling


@dataclass(frozen=True, slots=True)
class WorkloadShape:
    """Thresholds of the transformation shape (output tokens per input token, per request)."""
    bounded_ratio: tuple[float, float] = (0.8, 1.2)     # output/input: bounded by the input at <= 0.8,
                                                         # a harvest's 2-8x well above 1.2
    bounded_answer: tuple[float, float] = (350.0, 600.0)  # output tokens per request: a few hundred is an
                                                           # answer about the input; 600 (LONG_ANSWER) is a harvest
    harvest_ratio: tuple[float, float] = (2.0, 3.0)      # output/input of a harvest: people and products
                                                         # run at 0.3-1.9 (a launch day's tries ~2.4)
    harvest_answer: tuple[float, float] = (250.0, 400.0)  # output tokens per request: a chat answer is ~260

    def transformation(self, input_per_request: float, output_per_request: float) -> float:
        """0..1: how much the account's traffic has the transformation shape (long input, bounded
        output). 0 when input tokens are not reported: an unknown shape earns no relief."""
        if input_per_request <= 0.0:
            return 0.0
        ratio = output_per_request / input_per_request
        return falling(ratio, *self.bounded_ratio) * falling(output_per_request, *self.bounded_answer)

    def harvest(self, input_per_request: float, output_per_request: float) -> float:
        """0..1: the extractor's shape at moderate answer lengths: output at 2-3x the input and
        several hundred tokens per request (answers under the 600-token long-answer line, asked for
        with short questions). 0 when input tokens are not reported."""
        if input_per_request <= 0.0:
            return 0.0
        ratio = output_per_request / input_per_request
        return (1.0 - falling(ratio, *self.harvest_ratio)) * (1.0 - falling(output_per_request,
                                                                                *self.harvest_answer))

    @staticmethod
    def relief(transformation: float, relief: float) -> float:
        """Factor on the breadth findings: 1 - ``relief`` at a full transformation shape."""
        return 1.0 - relief * transformation


DEFAULT_SHAPE = WorkloadShape()
