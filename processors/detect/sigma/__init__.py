"""Sigma rules in the stream: pySigma parses them, secstream evaluates them on views of its documents.

See docs/sigma.md for the views (which document field feeds which Sigma field) and the configuration.
"""

from processors.detect.sigma.correlation import CompiledCorrelation, CorrelationState
from processors.detect.sigma.matcher import FULLTEXT, UnsupportedRule, compile_condition
from processors.detect.sigma.rules import (
    LEVEL_SEVERITY,
    CompiledRule,
    RuleError,
    RuleSelection,
    RuleSet,
    compile_rule,
    load_sigma_rules,
    rule_files,
)
from processors.detect.sigma.stage import SigmaEngine, project_rules_path, sigma_detection
from processors.detect.sigma.views import SOURCES, document_views, rule_source

__all__ = [
    "FULLTEXT",
    "LEVEL_SEVERITY",
    "SOURCES",
    "CompiledCorrelation",
    "CompiledRule",
    "CorrelationState",
    "RuleError",
    "RuleSelection",
    "RuleSet",
    "SigmaEngine",
    "UnsupportedRule",
    "compile_condition",
    "compile_rule",
    "document_views",
    "load_sigma_rules",
    "project_rules_path",
    "rule_files",
    "rule_source",
    "sigma_detection",
]
