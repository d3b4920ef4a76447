//! oslo.policy-compatible rule evaluation for `protector:*` rules.
