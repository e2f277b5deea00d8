"""Contract v1 record shapes: the single source of truth for events, alerts and feedback."""
from importlib.resources import files

from .alert import Alert, make_alert_id, validate_alert
from .event import BadEvent, Message, RequestEvent, event_from_dict, parse_event
from .feedback import BadFeedback, Feedback, feedback_from_dict, parse_feedback


def json_schema(name: str) -> bytes:
    """The JSON Schema file ``request_event.v1``, ``alert.v1`` or ``feedback.v1`` as bytes."""
    return files(__name__).joinpath(f"{name}.json").read_bytes()


__all__ = ["Alert", "BadEvent", "BadFeedback", "Feedback", "Message", "RequestEvent", "event_from_dict",
           "feedback_from_dict", "json_schema", "make_alert_id", "parse_event", "parse_feedback", "validate_alert"]
