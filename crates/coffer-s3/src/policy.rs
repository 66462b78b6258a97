//! AWS IAM-style S3 bucket policies: parsing and validation (`BucketPolicy::parse`) and
//! evaluation of one request against the parsed policy (`BucketPolicy::evaluate`).
//!
//! The evaluation follows the IAM policy reference: a statement applies when its principal,
//! action, resource and condition elements all match (the `Not*` forms invert their element);
//! any applicable `Deny` wins, else any applicable `Allow` allows, else the policy has nothing
//! to say (`NotApplicable`) and the caller falls back to its other rules (ownership, ACLs).
//!
//! Coffer has no AWS accounts, roles or services: principals name Coffer users (see
//! `PrincipalPattern`), and principal kinds that cannot name a Coffer user are accepted but
//! never match.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{Map, Value};

/// The prefix every resource in a bucket policy carries.
const S3_ARN_PREFIX: &str = "arn:aws:s3:::";

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub struct BucketPolicy {
    statements: Vec<Statement>,
}

/// Why a policy document was refused; the message says what is wrong. S3 error code
/// `MalformedPolicy` (400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

/// One request, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The authenticated user's name, or None for an anonymous request.
    pub principal: Option<&'a str>,
    /// e.g. "s3:GetObject"
    pub action: &'a str,
    /// "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
    pub resource: &'a str,
    /// Condition context keys, lower-cased names ("aws:securetransport", "s3:prefix", ...) to
    /// their values; absent key = not in the request. A key mapped to an empty list counts as
    /// absent.
    pub context: &'a HashMap<String, Vec<String>>,
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An applicable `Deny` statement: refuse, whatever else says.
    ExplicitDeny,
    /// An applicable `Allow` statement and no applicable `Deny`.
    Allow,
    /// No statement applies.
    NotApplicable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of patterns and whether the element was the `Not*` form.
#[derive(Debug, Clone)]
struct Element<T> {
    patterns: Vec<T>,
    negated: bool,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principal: Element<PrincipalPattern>,
    /// Lower-cased action patterns (actions match case-insensitively).
    action: Element<String>,
    /// Resource ARN patterns (matched case-sensitively).
    resource: Element<String>,
    conditions: Vec<Condition>,
}

/// One entry of a `Principal` / `NotPrincipal` element.
///
/// Coffer users have no accounts, so the account part of an IAM ARN is ignored:
/// `arn:aws:iam::<anything>:user/<name>` and a plain `<name>` both name user `<name>`, and
/// `arn:aws:iam::<account>:root` (an account's root, which AWS also spells as the bare account
/// id) names the user whose name is `<account>`. Principals that cannot name a Coffer user
/// (roles, assumed roles, services, federated identities) are accepted but never match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalPattern {
    /// `"*"`: everyone, anonymous requests included.
    Any,
    /// The Coffer user of this name.
    User(String),
    /// A valid principal that never matches a Coffer request.
    Never,
}

/// `ForAnyValue:` / `ForAllValues:` qualifiers for multi-valued context keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    /// No qualifier: the key's values are treated as one value set, matched if any matches.
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// The policy-side values of one condition, typed by the operator's category.
#[derive(Debug, Clone)]
enum Test {
    /// StringEquals / StringNotEquals (exact), or the IgnoreCase forms (values lower-cased).
    StringEquals {
        ignore_case: bool,
        values: Vec<String>,
    },
    /// StringLike / StringNotLike, ArnEquals / ArnLike / ArnNotEquals / ArnNotLike: `*` and `?`.
    Like(Vec<String>),
    /// BinaryEquals: the base64 text compared exactly.
    Binary(Vec<String>),
    Numeric(Cmp, Vec<f64>),
    /// Instants in nanoseconds since the Unix epoch.
    Date(Cmp, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<Cidr>),
    /// `true` = the key must be absent, `false` = it must be present.
    Null(Vec<bool>),
}

#[derive(Debug, Clone)]
struct Condition {
    set: SetOp,
    negated: bool,
    if_exists: bool,
    /// Lower-cased condition key.
    key: String,
    test: Test,
}

/// The operator kinds, before the values are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    StringEquals,
    StringEqualsIgnoreCase,
    Like,
    Binary,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Null,
}

/// An IPv4 or IPv6 network (a single address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

fn malformed(msg: impl Into<String>) -> MalformedPolicy {
    MalformedPolicy(msg.into())
}

impl BucketPolicy {
    /// Parses and validates the JSON for bucket `bucket` (resources must be
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/<key pattern>`; a resource naming another
    /// bucket is MalformedPolicy "Policy has invalid resource").
    pub fn parse(json: &str, bucket: &str) -> Result<Self, MalformedPolicy> {
        let doc: Value =
            serde_json::from_str(json).map_err(|_| malformed("Policies must be valid JSON"))?;
        let Value::Object(top) = doc else {
            return Err(malformed(
                "Policies must be valid JSON and the first byte must be '{'",
            ));
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("Unknown field in policy: {key}")));
            }
        }
        if let Some(version) = top.get("Version") {
            match version.as_str() {
                Some("2012-10-17" | "2008-10-17") => {}
                _ => return Err(malformed("The policy must contain a valid version string")),
            }
        }
        if let Some(id) = top.get("Id")
            && !id.is_string()
        {
            return Err(malformed("Policy Id must be a string"));
        }
        let raw_statements: Vec<&Map<String, Value>> = match top.get("Statement") {
            None => return Err(malformed("Missing required field Statement")),
            Some(Value::Object(s)) => vec![s],
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Object(s) => out.push(s),
                        _ => return Err(statement_shape_error()),
                    }
                }
                out
            }
            Some(_) => return Err(statement_shape_error()),
        };
        if raw_statements.is_empty() {
            return Err(malformed("Statement must not be empty"));
        }
        let mut sids = HashSet::new();
        let mut statements = Vec::with_capacity(raw_statements.len());
        for raw in raw_statements {
            statements.push(parse_statement(raw, bucket, &mut sids)?);
        }
        Ok(BucketPolicy { statements })
    }

    /// Evaluates the policy for one request: any applicable Deny statement gives
    /// `ExplicitDeny`, else any applicable Allow gives `Allow`, else `NotApplicable`.
    pub fn evaluate(&self, req: &PolicyRequest<'_>) -> Decision {
        let action = req.action.to_lowercase();
        let mut allowed = false;
        for statement in &self.statements {
            if statement.applies(req, &action) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NotApplicable
        }
    }
}

fn statement_shape_error() -> MalformedPolicy {
    malformed("Statement must be an object or an array of objects")
}

/// Picks exactly one of `Name` / `NotName` from a statement.
fn one_of<'v>(
    raw: &'v Map<String, Value>,
    name: &str,
) -> Result<(&'v Value, bool), MalformedPolicy> {
    let not_name = format!("Not{name}");
    match (raw.get(name), raw.get(&not_name)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (Some(_), Some(_)) => Err(malformed(format!(
            "Statement cannot contain both {name} and {not_name}"
        ))),
        (None, None) => Err(malformed(format!("Missing required field {name}"))),
    }
}

fn parse_statement(
    raw: &Map<String, Value>,
    bucket: &str,
    sids: &mut HashSet<String>,
) -> Result<Statement, MalformedPolicy> {
    for key in raw.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(malformed(format!("Unknown field in statement: {key}")));
        }
    }
    match raw.get("Sid") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(malformed("Sid must be a string")),
    }
    if let Some(Value::String(sid)) = raw.get("Sid")
        && !sid.is_empty()
        && !sids.insert(sid.clone())
    {
        return Err(malformed(
            "Statement IDs (SID) in a single policy must be unique",
        ));
    }
    let effect = match raw.get("Effect") {
        None => return Err(malformed("Missing required field Effect")),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => return Err(malformed(format!("Invalid effect: {e}"))),
        Some(other) => return Err(malformed(format!("Invalid effect: {other}"))),
    };

    let (principal_value, principal_negated) = one_of(raw, "Principal")?;
    if principal_negated && effect == Effect::Allow {
        return Err(malformed(
            "Invalid combination of elements: NotPrincipal with Effect Allow",
        ));
    }
    let principal = Element {
        patterns: parse_principal(principal_value)?,
        negated: principal_negated,
    };

    let (action_value, action_negated) = one_of(raw, "Action")?;
    let actions =
        string_list(action_value).ok_or_else(|| malformed("Policy has invalid action"))?;
    let mut action_patterns = Vec::with_capacity(actions.len());
    for a in actions {
        action_patterns.push(validate_action(&a)?);
    }
    let action = Element {
        patterns: action_patterns,
        negated: action_negated,
    };

    let (resource_value, resource_negated) = one_of(raw, "Resource")?;
    let resources = string_list(resource_value).ok_or_else(invalid_resource)?;
    for r in &resources {
        if !resource_names_bucket(r, bucket) {
            return Err(invalid_resource());
        }
    }
    let resource = Element {
        patterns: resources,
        negated: resource_negated,
    };

    let conditions = match raw.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => parse_conditions(block)?,
        Some(_) => return Err(malformed("Condition must be an object")),
    };

    Ok(Statement {
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// A string or a non-empty array of strings.
fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn invalid_principal() -> MalformedPolicy {
    malformed("Invalid principal in policy")
}

fn invalid_resource() -> MalformedPolicy {
    malformed("Policy has invalid resource")
}

fn parse_principal(v: &Value) -> Result<Vec<PrincipalPattern>, MalformedPolicy> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalPattern::Any]),
        Value::Object(kinds) if !kinds.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in kinds {
                let ids = string_list(ids).ok_or_else(invalid_principal)?;
                for id in ids {
                    let pattern = match kind.as_str() {
                        "AWS" => aws_principal(&id)?,
                        // Coffer has no canonical ids distinct from user names.
                        "CanonicalUser" => match id.as_str() {
                            "" => return Err(invalid_principal()),
                            "*" => PrincipalPattern::Any,
                            _ => PrincipalPattern::User(id),
                        },
                        "Service" | "Federated" => {
                            if id.is_empty() {
                                return Err(invalid_principal());
                            }
                            PrincipalPattern::Never
                        }
                        _ => return Err(invalid_principal()),
                    };
                    out.push(pattern);
                }
            }
            Ok(out)
        }
        _ => Err(invalid_principal()),
    }
}

/// One `"AWS"` principal: `*`, a user or root ARN, another IAM/STS ARN, or a plain user name.
fn aws_principal(id: &str) -> Result<PrincipalPattern, MalformedPolicy> {
    if id == "*" {
        return Ok(PrincipalPattern::Any);
    }
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(invalid_principal());
    }
    if let Some(rest) = id.strip_prefix("arn:aws:iam::") {
        let (account, resource) = rest.split_once(':').ok_or_else(invalid_principal)?;
        if resource == "root" {
            // Coffer users have no accounts: an account's root names the user whose name is
            // the account id.
            if account.is_empty() {
                return Err(invalid_principal());
            }
            return Ok(PrincipalPattern::User(account.to_owned()));
        }
        if let Some(name) = resource.strip_prefix("user/") {
            if name.is_empty() {
                return Err(invalid_principal());
            }
            return Ok(PrincipalPattern::User(name.to_owned()));
        }
        if resource.is_empty() {
            return Err(invalid_principal());
        }
        // Roles, groups and the like: no Coffer user is one.
        return Ok(PrincipalPattern::Never);
    }
    if id.starts_with("arn:") {
        // Other ARNs (sts assumed roles, other partitions): never a Coffer user.
        return Ok(PrincipalPattern::Never);
    }
    Ok(PrincipalPattern::User(id.to_owned()))
}

/// Validates one action pattern and returns it lower-cased.
fn validate_action(action: &str) -> Result<String, MalformedPolicy> {
    let lower = action.to_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    match lower.strip_prefix("s3:") {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?' || c == '-') =>
        {
            Ok(lower)
        }
        _ => Err(malformed("Policy has invalid action")),
    }
}

/// Whether a resource pattern is `arn:aws:s3:::<pattern>` whose bucket part (before the first
/// `/`) can match `bucket`.
fn resource_names_bucket(resource: &str, bucket: &str) -> bool {
    let Some(rest) = resource.strip_prefix(S3_ARN_PREFIX) else {
        return false;
    };
    let bucket_part = match rest.split_once('/') {
        Some((b, _)) => b,
        None => rest,
    };
    !bucket_part.is_empty() && wildcard_match(bucket_part, bucket)
}

fn parse_operator(name: &str) -> Option<(SetOp, OpKind, bool, bool)> {
    let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (SetOp::ForAnyValue, rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (SetOp::ForAllValues, rest)
    } else {
        (SetOp::Single, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let (kind, negated) = match base {
        "StringEquals" => (OpKind::StringEquals, false),
        "StringNotEquals" => (OpKind::StringEquals, true),
        "StringEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, true),
        "StringLike" | "ArnEquals" | "ArnLike" => (OpKind::Like, false),
        "StringNotLike" | "ArnNotEquals" | "ArnNotLike" => (OpKind::Like, true),
        "BinaryEquals" => (OpKind::Binary, false),
        "NumericEquals" => (OpKind::Numeric(Cmp::Eq), false),
        "NumericNotEquals" => (OpKind::Numeric(Cmp::Eq), true),
        "NumericLessThan" => (OpKind::Numeric(Cmp::Lt), false),
        "NumericLessThanEquals" => (OpKind::Numeric(Cmp::Le), false),
        "NumericGreaterThan" => (OpKind::Numeric(Cmp::Gt), false),
        "NumericGreaterThanEquals" => (OpKind::Numeric(Cmp::Ge), false),
        "DateEquals" => (OpKind::Date(Cmp::Eq), false),
        "DateNotEquals" => (OpKind::Date(Cmp::Eq), true),
        "DateLessThan" => (OpKind::Date(Cmp::Lt), false),
        "DateLessThanEquals" => (OpKind::Date(Cmp::Le), false),
        "DateGreaterThan" => (OpKind::Date(Cmp::Gt), false),
        "DateGreaterThanEquals" => (OpKind::Date(Cmp::Ge), false),
        "Bool" => (OpKind::Bool, false),
        "IpAddress" => (OpKind::Ip, false),
        "NotIpAddress" => (OpKind::Ip, true),
        // `Null` is itself an existence test: there is no `NullIfExists`.
        "Null" if !if_exists => (OpKind::Null, false),
        _ => return None,
    };
    Some((set, kind, negated, if_exists))
}

fn parse_conditions(block: &Map<String, Value>) -> Result<Vec<Condition>, MalformedPolicy> {
    let mut out = Vec::new();
    for (op_name, keys) in block {
        let (set, kind, negated, if_exists) = parse_operator(op_name)
            .ok_or_else(|| malformed(format!("Invalid Condition type : {op_name}")))?;
        let Value::Object(keys) = keys else {
            return Err(malformed(format!(
                "Condition block for {op_name} must be an object"
            )));
        };
        for (key, values) in keys {
            if key.is_empty() {
                return Err(malformed(format!(
                    "Condition key must not be empty in {op_name}"
                )));
            }
            let bad_value = || malformed(format!("Invalid value for {op_name} on key {key}"));
            let values = condition_values(values).ok_or_else(bad_value)?;
            let test = match kind {
                OpKind::StringEquals => Test::StringEquals {
                    ignore_case: false,
                    values,
                },
                OpKind::StringEqualsIgnoreCase => Test::StringEquals {
                    ignore_case: true,
                    values: values.iter().map(|v| v.to_lowercase()).collect(),
                },
                OpKind::Like => Test::Like(values),
                OpKind::Binary => Test::Binary(values),
                OpKind::Numeric(cmp) => Test::Numeric(
                    cmp,
                    values
                        .iter()
                        .map(|v| parse_number(v))
                        .collect::<Option<_>>()
                        .ok_or_else(bad_value)?,
                ),
                OpKind::Date(cmp) => Test::Date(
                    cmp,
                    values
                        .iter()
                        .map(|v| parse_date(v))
                        .collect::<Option<_>>()
                        .ok_or_else(bad_value)?,
                ),
                OpKind::Bool => Test::Bool(
                    values
                        .iter()
                        .map(|v| parse_bool(v))
                        .collect::<Option<_>>()
                        .ok_or_else(bad_value)?,
                ),
                OpKind::Null => Test::Null(
                    values
                        .iter()
                        .map(|v| parse_bool(v))
                        .collect::<Option<_>>()
                        .ok_or_else(bad_value)?,
                ),
                OpKind::Ip => Test::Ip(
                    values
                        .iter()
                        .map(|v| parse_cidr(v))
                        .collect::<Option<_>>()
                        .ok_or_else(bad_value)?,
                ),
            };
            out.push(Condition {
                set,
                negated,
                if_exists,
                key: key.to_lowercase(),
                test,
            });
        }
    }
    Ok(out)
}

/// A condition's values: a scalar (string, number, boolean) or a non-empty array of scalars,
/// normalized to strings.
fn condition_values(v: &Value) -> Option<Vec<String>> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) if !items.is_empty() => items.iter().map(scalar).collect(),
        Value::Array(_) => None,
        other => scalar(other).map(|s| vec![s]),
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    // Only plain decimal notation: `f64::from_str` would also take "inf" and "NaN".
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// An instant in nanoseconds since the Unix epoch, from epoch seconds (`"1700000000"`) or
/// ISO 8601: `YYYY-MM-DD`, `YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh[:mm]]` (no zone = UTC), or the
/// basic form `YYYYMMDDThhmmss[Z]`.
fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    let digits_only = s.strip_prefix('-').unwrap_or(s);
    if !digits_only.is_empty() && digits_only.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s.parse().ok()?;
        return Some(i128::from(secs) * NANOS_PER_SEC);
    }
    let mut c = DateCursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = c.number(4)?;
    let extended = c.eat(b'-');
    let month = c.number(2)?;
    if extended && !c.eat(b'-') {
        return None;
    }
    let day = c.number(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let mut secs = days * 86_400;
    let mut nanos: i64 = 0;
    if !c.done() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return None;
        }
        let hour = c.number(2)?;
        if extended && !c.eat(b':') {
            return None;
        }
        let minute = c.number(2)?;
        let second = if (extended && c.eat(b':')) || (!extended && c.peek_digit()) {
            c.number(2)?
        } else {
            0
        };
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        secs += hour * 3600 + minute * 60 + second;
        if c.eat(b'.') || c.eat(b',') {
            let mut count = 0;
            while let Some(d) = c.digit() {
                if count < 9 {
                    nanos = nanos * 10 + d;
                }
                count += 1;
            }
            if count == 0 {
                return None;
            }
            for _ in count..9 {
                nanos *= 10;
            }
        }
        if !(c.eat(b'Z') || c.eat(b'z'))
            && let Some(sign) = c.sign()
        {
            let oh = c.number(2)?;
            let om = if c.eat(b':') || c.peek_digit() {
                c.number(2)?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            // Local time = UTC + offset, so UTC = local - offset.
            secs -= sign * (oh * 3600 + om * 60);
        }
        if !c.done() {
            return None;
        }
    }
    Some(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos))
}

struct DateCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl DateCursor<'_> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek_digit(&self) -> bool {
        self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit)
    }

    fn digit(&mut self) -> Option<i64> {
        let b = *self.bytes.get(self.pos)?;
        if b.is_ascii_digit() {
            self.pos += 1;
            Some(i64::from(b - b'0'))
        } else {
            None
        }
    }

    /// Exactly `n` digits.
    fn number(&mut self, n: usize) -> Option<i64> {
        let mut v = 0;
        for _ in 0..n {
            v = v * 10 + self.digit()?;
        }
        Some(v)
    }

    fn sign(&mut self) -> Option<i64> {
        if self.eat(b'+') {
            Some(1)
        } else if self.eat(b'-') {
            Some(-1)
        } else {
            None
        }
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or `v6/n`.
fn parse_cidr(s: &str) -> Option<Cidr> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u8 = p.parse().ok()?;
            if n > max {
                return None;
            }
            n
        }
    };
    Some(Cidr { addr, prefix })
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => v4_in(net.to_bits(), self.prefix, a.to_bits()),
            (IpAddr::V6(net), IpAddr::V6(a)) => v6_in(net.to_bits(), self.prefix, a.to_bits()),
            // An IPv4-mapped IPv6 request address is the IPv4 address it maps.
            (IpAddr::V4(net), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| v4_in(net.to_bits(), self.prefix, a.to_bits())),
            (IpAddr::V6(net), IpAddr::V4(a)) => {
                v6_in(net.to_bits(), self.prefix, a.to_ipv6_mapped().to_bits())
            }
        }
    }
}

fn v4_in(net: u32, prefix: u8, addr: u32) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    net & mask == addr & mask
}

fn v6_in(net: u128, prefix: u8, addr: u128) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    net & mask == addr & mask
}

/// A request-side IP value: an address, or an address with a prefix (the prefix ignored).
fn parse_request_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    match s.split_once('/') {
        Some((a, _)) => a.parse().ok(),
        None => s.parse().ok(),
    }
}

/// IAM wildcard matching: `*` matches any run of characters (`/` included), `?` exactly one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it currently stands up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(&pc), Some(&tc)) if pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

impl Statement {
    fn applies(&self, req: &PolicyRequest<'_>, lower_action: &str) -> bool {
        let principal = self
            .principal
            .patterns
            .iter()
            .any(|p| p.matches(req.principal));
        if principal == self.principal.negated {
            return false;
        }
        let action = self
            .action
            .patterns
            .iter()
            .any(|p| wildcard_match(p, lower_action));
        if action == self.action.negated {
            return false;
        }
        let resource = self
            .resource
            .patterns
            .iter()
            .any(|p| wildcard_match(p, req.resource));
        if resource == self.resource.negated {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(req.context))
    }
}

impl PrincipalPattern {
    fn matches(&self, principal: Option<&str>) -> bool {
        match self {
            PrincipalPattern::Any => true,
            PrincipalPattern::User(name) => principal == Some(name.as_str()),
            PrincipalPattern::Never => false,
        }
    }
}

impl Condition {
    fn holds(&self, context: &HashMap<String, Vec<String>>) -> bool {
        let values = context
            .get(&self.key)
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty());
        if let Test::Null(expected) = &self.test {
            let absent = values.is_none();
            return expected.contains(&absent);
        }
        let Some(values) = values else {
            // AWS: an absent key fails the condition, except for `...IfExists` (true),
            // `ForAllValues:` (vacuously true) and the negated operators (nothing to match, so
            // "matches none" holds); `ForAnyValue:` is false even when negated.
            return match self.set {
                _ if self.if_exists => true,
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => false,
                SetOp::Single => self.negated,
            };
        };
        match self.set {
            SetOp::Single => values.iter().any(|v| self.test.matches(v)) != self.negated,
            SetOp::ForAllValues => values.iter().all(|v| self.test.matches(v) != self.negated),
            SetOp::ForAnyValue => values.iter().any(|v| self.test.matches(v) != self.negated),
        }
    }
}

impl Test {
    /// Whether one request value matches any of the policy values (the positive form; the
    /// negated operators invert this, so several values of a negated operator are NOR-ed).
    /// A request value of the wrong type (not a number, date, boolean or address) matches
    /// nothing.
    fn matches(&self, value: &str) -> bool {
        match self {
            Test::StringEquals {
                ignore_case: false,
                values,
            }
            | Test::Binary(values) => values.iter().any(|p| p == value),
            Test::StringEquals {
                ignore_case: true,
                values,
            } => {
                let value = value.to_lowercase();
                values.contains(&value)
            }
            Test::Like(values) => values.iter().any(|p| wildcard_match(p, value)),
            Test::Numeric(cmp, values) => {
                parse_number(value).is_some_and(|v| values.iter().any(|&p| cmp.holds(v, p)))
            }
            Test::Date(cmp, values) => {
                parse_date(value).is_some_and(|v| values.iter().any(|&p| cmp.holds(v, p)))
            }
            Test::Bool(values) => parse_bool(value).is_some_and(|v| values.contains(&v)),
            Test::Ip(nets) => {
                parse_request_ip(value).is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
            }
            // Handled in `Condition::holds`: it tests the key's presence, not a value.
            Test::Null(_) => false,
        }
    }
}

/// The IAM action an S3 operation (as s3s names it) needs, as the S3 "operations to
/// permissions" reference gives it; `"s3:Unknown"` for anything else. Operations on a specific
/// object version use `versioned_action` of this.
pub fn action_for(op: &str) -> &'static str {
    match op {
        "GetObject" | "HeadObject" | "SelectObjectContent" => "s3:GetObject",
        "GetObjectAttributes" => "s3:GetObjectAttributes",
        "GetObjectTorrent" => "s3:GetObjectTorrent",
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "RestoreObject" => "s3:RestoreObject",
        "GetObjectAcl" => "s3:GetObjectAcl",
        "PutObjectAcl" => "s3:PutObjectAcl",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        "GetObjectLegalHold" => "s3:GetObjectLegalHold",
        "PutObjectLegalHold" => "s3:PutObjectLegalHold",
        "GetObjectRetention" => "s3:GetObjectRetention",
        "PutObjectRetention" => "s3:PutObjectRetention",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketAcl" => "s3:GetBucketAcl",
        "PutBucketAcl" => "s3:PutBucketAcl",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketWebsite" => "s3:GetBucketWebsite",
        "PutBucketWebsite" => "s3:PutBucketWebsite",
        "DeleteBucketWebsite" => "s3:DeleteBucketWebsite",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetBucketLogging" => "s3:GetBucketLogging",
        "PutBucketLogging" => "s3:PutBucketLogging",
        "GetBucketNotificationConfiguration" => "s3:GetBucketNotification",
        "PutBucketNotificationConfiguration" => "s3:PutBucketNotification",
        "GetBucketRequestPayment" => "s3:GetBucketRequestPayment",
        "PutBucketRequestPayment" => "s3:PutBucketRequestPayment",
        "GetBucketReplication" => "s3:GetReplicationConfiguration",
        "PutBucketReplication" | "DeleteBucketReplication" => "s3:PutReplicationConfiguration",
        "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
            "s3:PutBucketOwnershipControls"
        }
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetBucketAccelerateConfiguration" => "s3:GetAccelerateConfiguration",
        "PutBucketAccelerateConfiguration" => "s3:PutAccelerateConfiguration",
        "GetBucketAnalyticsConfiguration" | "ListBucketAnalyticsConfigurations" => {
            "s3:GetAnalyticsConfiguration"
        }
        "PutBucketAnalyticsConfiguration" | "DeleteBucketAnalyticsConfiguration" => {
            "s3:PutAnalyticsConfiguration"
        }
        "GetBucketInventoryConfiguration" | "ListBucketInventoryConfigurations" => {
            "s3:GetInventoryConfiguration"
        }
        "PutBucketInventoryConfiguration" | "DeleteBucketInventoryConfiguration" => {
            "s3:PutInventoryConfiguration"
        }
        "GetBucketMetricsConfiguration" | "ListBucketMetricsConfigurations" => {
            "s3:GetMetricsConfiguration"
        }
        "PutBucketMetricsConfiguration" | "DeleteBucketMetricsConfiguration" => {
            "s3:PutMetricsConfiguration"
        }
        "GetBucketIntelligentTieringConfiguration"
        | "ListBucketIntelligentTieringConfigurations" => "s3:GetIntelligentTieringConfiguration",
        "PutBucketIntelligentTieringConfiguration"
        | "DeleteBucketIntelligentTieringConfiguration" => "s3:PutIntelligentTieringConfiguration",
        "CreateBucketMetadataTableConfiguration" => "s3:CreateBucketMetadataTableConfiguration",
        "GetBucketMetadataTableConfiguration" => "s3:GetBucketMetadataTableConfiguration",
        "DeleteBucketMetadataTableConfiguration" => "s3:DeleteBucketMetadataTableConfiguration",
        _ => "s3:Unknown",
    }
}

/// The action a request naming a specific object version (`versionId`) needs instead of
/// `action` (an IAM action such as `"s3:GetObject"`; the `s3:` prefix may be left off), or
/// None when the action has no version variant.
pub fn versioned_action(action: &str) -> Option<&'static str> {
    let name = action.strip_prefix("s3:").unwrap_or(action);
    Some(match name {
        "GetObject" => "s3:GetObjectVersion",
        "DeleteObject" => "s3:DeleteObjectVersion",
        "GetObjectAcl" => "s3:GetObjectVersionAcl",
        "PutObjectAcl" => "s3:PutObjectVersionAcl",
        "GetObjectTagging" => "s3:GetObjectVersionTagging",
        "PutObjectTagging" => "s3:PutObjectVersionTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectVersionTagging",
        "GetObjectAttributes" => "s3:GetObjectVersionAttributes",
        "GetObjectTorrent" => "s3:GetObjectVersionTorrent",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const B: &str = "b";

    fn ctx(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, vs)| {
                (
                    (*k).to_owned(),
                    vs.iter().map(|v| (*v).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn policy(doc: &Value) -> BucketPolicy {
        BucketPolicy::parse(&doc.to_string(), B)
            .unwrap_or_else(|e| panic!("policy {doc} refused: {e}"))
    }

    fn stmt_policy(statement: Value) -> BucketPolicy {
        policy(&json!({"Version": "2012-10-17", "Statement": [statement]}))
    }

    fn eval_full(
        p: &BucketPolicy,
        principal: Option<&str>,
        action: &str,
        resource: &str,
        context: &HashMap<String, Vec<String>>,
    ) -> Decision {
        p.evaluate(&PolicyRequest {
            principal,
            action,
            resource,
            context,
        })
    }

    fn eval(p: &BucketPolicy, principal: Option<&str>, action: &str, resource: &str) -> Decision {
        eval_full(p, principal, action, resource, &HashMap::new())
    }

    fn parse_err(doc: &str) -> String {
        match BucketPolicy::parse(doc, B) {
            Ok(_) => panic!("policy accepted: {doc}"),
            Err(e) => e.to_string(),
        }
    }

    fn allow_all_with(extra: Value) -> Value {
        let mut s = json!({
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*"
        });
        if let (Value::Object(s), Value::Object(extra)) = (&mut s, extra) {
            for (k, v) in extra {
                if v.is_null() {
                    s.remove(&k);
                } else {
                    s.insert(k, v);
                }
            }
        }
        json!({"Version": "2012-10-17", "Statement": s})
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "Policies must be valid JSON"),
            ("{".into(), "Policies must be valid JSON"),
            ("".into(), "Policies must be valid JSON"),
            (
                "[]".into(),
                "Policies must be valid JSON and the first byte must be '{'",
            ),
            (
                "\"x\"".into(),
                "Policies must be valid JSON and the first byte must be '{'",
            ),
            (
                json!({"Version": "2012-10-17"}).to_string(),
                "Missing required field Statement",
            ),
            (
                json!({"Statement": []}).to_string(),
                "Statement must not be empty",
            ),
            (
                json!({"Statement": "x"}).to_string(),
                "Statement must be an object or an array of objects",
            ),
            (
                json!({"Statement": [1]}).to_string(),
                "Statement must be an object or an array of objects",
            ),
            (
                allow_all_with(json!({})).to_string().replace("\"Version\"", "\"Versio\""),
                "Unknown field in policy: Versio",
            ),
            (
                json!({"Version": "2020-01-01", "Statement": allow_all_with(json!({}))["Statement"]})
                    .to_string(),
                "The policy must contain a valid version string",
            ),
            (
                json!({"Version": 1, "Statement": allow_all_with(json!({}))["Statement"]})
                    .to_string(),
                "The policy must contain a valid version string",
            ),
            (
                json!({"Id": 1, "Statement": allow_all_with(json!({}))["Statement"]}).to_string(),
                "Policy Id must be a string",
            ),
            (
                allow_all_with(json!({"Effect": null})).to_string(),
                "Missing required field Effect",
            ),
            (
                allow_all_with(json!({"Effect": "Permit"})).to_string(),
                "Invalid effect: Permit",
            ),
            (
                allow_all_with(json!({"Effect": "allow"})).to_string(),
                "Invalid effect: allow",
            ),
            (
                allow_all_with(json!({"Effect": 3})).to_string(),
                "Invalid effect: 3",
            ),
            (
                allow_all_with(json!({"Principal": null})).to_string(),
                "Missing required field Principal",
            ),
            (
                allow_all_with(json!({"Action": null})).to_string(),
                "Missing required field Action",
            ),
            (
                allow_all_with(json!({"Resource": null})).to_string(),
                "Missing required field Resource",
            ),
            (
                allow_all_with(json!({"NotPrincipal": {"AWS": "x"}})).to_string(),
                "Statement cannot contain both Principal and NotPrincipal",
            ),
            (
                allow_all_with(json!({"NotAction": "s3:PutObject"})).to_string(),
                "Statement cannot contain both Action and NotAction",
            ),
            (
                allow_all_with(json!({"NotResource": "arn:aws:s3:::b"})).to_string(),
                "Statement cannot contain both Resource and NotResource",
            ),
            (
                allow_all_with(json!({"Principal": null, "NotPrincipal": {"AWS": "*"}}))
                    .to_string(),
                "Invalid combination of elements: NotPrincipal with Effect Allow",
            ),
            (
                allow_all_with(json!({"Resource": "arn:aws:s3:::other/*"})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": "arn:aws:s3:::bb"})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": ["arn:aws:s3:::b", "arn:aws:s3:::c/*"]}))
                    .to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": "*"})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": "arn:aws:s3:::"})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": "arn:aws:iam:::b"})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": []})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Resource": 5})).to_string(),
                "Policy has invalid resource",
            ),
            (
                allow_all_with(json!({"Action": "iam:CreateUser"})).to_string(),
                "Policy has invalid action",
            ),
            (
                allow_all_with(json!({"Action": "GetObject"})).to_string(),
                "Policy has invalid action",
            ),
            (
                allow_all_with(json!({"Action": "s3:"})).to_string(),
                "Policy has invalid action",
            ),
            (
                allow_all_with(json!({"Action": []})).to_string(),
                "Policy has invalid action",
            ),
            (
                allow_all_with(json!({"Action": ["s3:GetObject", 1]})).to_string(),
                "Policy has invalid action",
            ),
            (
                allow_all_with(json!({"Principal": "alice"})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {"AWS": ""}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {"AWS": []}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {"Bogus": "x"}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {"AWS": "arn:aws:iam::1:user/"}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Principal": {"AWS": "arn:aws:iam:::root"}})).to_string(),
                "Invalid principal in policy",
            ),
            (
                allow_all_with(json!({"Bogus": 1})).to_string(),
                "Unknown field in statement: Bogus",
            ),
            (
                allow_all_with(json!({"Sid": 1})).to_string(),
                "Sid must be a string",
            ),
            (
                json!({"Statement": [
                    allow_all_with(json!({"Sid": "same"}))["Statement"],
                    allow_all_with(json!({"Sid": "same"}))["Statement"]
                ]})
                .to_string(),
                "Statement IDs (SID) in a single policy must be unique",
            ),
            (
                allow_all_with(json!({"Condition": "x"})).to_string(),
                "Condition must be an object",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEqualz": {"k": "v"}}})).to_string(),
                "Invalid Condition type : StringEqualz",
            ),
            (
                allow_all_with(json!({"Condition": {"stringequals": {"k": "v"}}})).to_string(),
                "Invalid Condition type : stringequals",
            ),
            (
                allow_all_with(json!({"Condition": {"NullIfExists": {"k": "true"}}})).to_string(),
                "Invalid Condition type : NullIfExists",
            ),
            (
                allow_all_with(json!({"Condition": {"ForSomeValues:StringEquals": {"k": "v"}}}))
                    .to_string(),
                "Invalid Condition type : ForSomeValues:StringEquals",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": "v"}})).to_string(),
                "Condition block for StringEquals must be an object",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": {"k": null}}})).to_string(),
                "Invalid value for StringEquals on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": {"k": []}}})).to_string(),
                "Invalid value for StringEquals on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": {"k": {"a": 1}}}}))
                    .to_string(),
                "Invalid value for StringEquals on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": {"k": [["v"]]}}}))
                    .to_string(),
                "Invalid value for StringEquals on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"StringEquals": {"": "v"}}})).to_string(),
                "Condition key must not be empty in StringEquals",
            ),
            (
                allow_all_with(json!({"Condition": {"NumericEquals": {"k": "ten"}}})).to_string(),
                "Invalid value for NumericEquals on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"NumericLessThan": {"k": "NaN"}}}))
                    .to_string(),
                "Invalid value for NumericLessThan on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"NumericLessThan": {"k": "inf"}}}))
                    .to_string(),
                "Invalid value for NumericLessThan on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"DateLessThan": {"k": "yesterday"}}}))
                    .to_string(),
                "Invalid value for DateLessThan on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"DateLessThan": {"k": "2020-02-30"}}}))
                    .to_string(),
                "Invalid value for DateLessThan on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"Bool": {"k": "yes"}}})).to_string(),
                "Invalid value for Bool on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"Null": {"k": "maybe"}}})).to_string(),
                "Invalid value for Null on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"IpAddress": {"k": "10.0.0.0/33"}}}))
                    .to_string(),
                "Invalid value for IpAddress on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"IpAddress": {"k": "10.0.0/8"}}}))
                    .to_string(),
                "Invalid value for IpAddress on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"NotIpAddress": {"k": "::/129"}}}))
                    .to_string(),
                "Invalid value for NotIpAddress on key k",
            ),
            (
                allow_all_with(json!({"Condition": {"IpAddress": {"k": "1.2.3.4/"}}}))
                    .to_string(),
                "Invalid value for IpAddress on key k",
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(parse_err(&doc), want, "policy: {doc}");
        }
    }

    #[test]
    fn valid_policies_parse() {
        let cases = vec![
            allow_all_with(json!({})),
            json!({"Statement": allow_all_with(json!({}))["Statement"]}),
            json!({"Version": "2008-10-17", "Id": "x", "Statement": allow_all_with(json!({}))["Statement"]}),
            allow_all_with(json!({"Sid": "a"})),
            allow_all_with(json!({"Principal": {"AWS": "*"}})),
            allow_all_with(json!({"Principal": {"AWS": ["alice", "arn:aws:iam::123:user/bob"]}})),
            allow_all_with(json!({"Principal": {"AWS": "arn:aws:iam::123456789012:root"}})),
            allow_all_with(json!({"Principal": {"AWS": "arn:aws:iam::123:role/r"}})),
            allow_all_with(json!({"Principal": {"Service": "cloudfront.amazonaws.com"}})),
            allow_all_with(json!({"Principal": {"CanonicalUser": "alice"}})),
            allow_all_with(
                json!({"Effect": "Deny", "Principal": null, "NotPrincipal": {"AWS": "alice"}}),
            ),
            allow_all_with(json!({"Action": "*"})),
            allow_all_with(json!({"Action": "S3:GETOBJECT"})),
            allow_all_with(json!({"Action": ["s3:Get*", "s3:List?ucket"]})),
            allow_all_with(json!({"Action": null, "NotAction": "s3:DeleteObject"})),
            allow_all_with(json!({"Resource": "arn:aws:s3:::b"})),
            allow_all_with(json!({"Resource": "arn:aws:s3:::b*"})),
            allow_all_with(json!({"Resource": "arn:aws:s3:::*"})),
            allow_all_with(json!({"Resource": "arn:aws:s3:::?/x"})),
            allow_all_with(json!({"Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/public/*"]})),
            allow_all_with(json!({"Resource": null, "NotResource": "arn:aws:s3:::b/secret/*"})),
            allow_all_with(json!({"Condition": {}})),
            allow_all_with(json!({"Condition": {"StringEquals": {}}})),
            allow_all_with(json!({"Condition": {"NumericLessThan": {"s3:max-keys": 10}}})),
            allow_all_with(json!({"Condition": {"Bool": {"aws:SecureTransport": false}}})),
            allow_all_with(
                json!({"Condition": {"ForAllValues:StringLikeIfExists": {"k": ["a*", 1, true]}}}),
            ),
            allow_all_with(
                json!({"Condition": {"DateGreaterThan": {"aws:CurrentTime": ["2020-01-01T00:00:00Z", 1_600_000_000]}}}),
            ),
        ];
        for doc in cases {
            assert!(
                BucketPolicy::parse(&doc.to_string(), B).is_ok(),
                "refused: {doc}"
            );
        }
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.jpg", "x/y.jpg", true),
            ("*.jpg", "x/y.jpeg", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("**", "x", true),
            ("?", "é", true),
            ("?*", "", false),
            ("public/*", "public/x", true),
            ("public/*", "private/x", false),
            ("*a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(wildcard_match(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn action_matching_is_case_insensitive_with_wildcards() {
        let cases = [
            ("s3:Get*", "s3:GetObject", true),
            ("s3:Get*", "s3:getobjectacl", true),
            ("s3:get*", "s3:GetObject", true),
            ("s3:Get*", "s3:PutObject", false),
            ("s3:*", "s3:DeleteBucket", true),
            ("*", "s3:DeleteBucket", true),
            ("s3:GetObjec?", "s3:GetObject", true),
            ("s3:GetObjec?", "s3:GetObjectAcl", false),
            ("S3:GETOBJECT", "s3:GetObject", true),
            ("s3:GetObject", "s3:GetObjectVersion", false),
        ];
        for (pattern, action, want) in cases {
            let p = policy(&allow_all_with(json!({"Action": pattern})));
            let got = eval(&p, None, action, "arn:aws:s3:::b/k");
            let want = if want {
                Decision::Allow
            } else {
                Decision::NotApplicable
            };
            assert_eq!(got, want, "{pattern} vs {action}");
        }
    }

    #[test]
    fn resource_matching() {
        let cases = [
            ("arn:aws:s3:::b/public/*", "arn:aws:s3:::b/public/x", true),
            (
                "arn:aws:s3:::b/public/*",
                "arn:aws:s3:::b/public/a/b/c",
                true,
            ),
            ("arn:aws:s3:::b/public/*", "arn:aws:s3:::b/private/x", false),
            ("arn:aws:s3:::b/public/*", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b", "arn:aws:s3:::b", true),
            ("arn:aws:s3:::b", "arn:aws:s3:::b/x", false),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b", true),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b/x", true),
            ("arn:aws:s3:::b/?.txt", "arn:aws:s3:::b/a.txt", true),
            ("arn:aws:s3:::b/?.txt", "arn:aws:s3:::b/ab.txt", false),
            ("arn:aws:s3:::b/Key", "arn:aws:s3:::b/key", false),
        ];
        for (pattern, resource, want) in cases {
            let p = policy(&allow_all_with(json!({"Resource": pattern})));
            let got = eval(&p, Some("alice"), "s3:GetObject", resource);
            let want = if want {
                Decision::Allow
            } else {
                Decision::NotApplicable
            };
            assert_eq!(got, want, "{pattern} vs {resource}");
        }
    }

    #[test]
    fn resources_must_name_this_bucket() {
        for (resource, bucket, ok) in [
            ("arn:aws:s3:::mybucket", "mybucket", true),
            ("arn:aws:s3:::mybucket/*", "mybucket", true),
            ("arn:aws:s3:::my*", "mybucket", true),
            ("arn:aws:s3:::mybucket/a/b*", "mybucket", true),
            ("arn:aws:s3:::mybucket2/*", "mybucket", false),
            ("arn:aws:s3:::my/bucket", "mybucket", false),
            ("arn:aws:s3:::MYBUCKET", "mybucket", false),
            ("arn:aws:s3::mybucket", "mybucket", false),
        ] {
            let doc = allow_all_with(json!({"Resource": resource})).to_string();
            assert_eq!(
                BucketPolicy::parse(&doc, bucket).is_ok(),
                ok,
                "{resource} in {bucket}"
            );
        }
    }

    #[test]
    fn principals() {
        let cases: Vec<(Value, Option<&str>, bool)> = vec![
            (json!("*"), None, true),
            (json!("*"), Some("alice"), true),
            (json!({"AWS": "*"}), None, true),
            (json!({"AWS": "*"}), Some("alice"), true),
            (json!({"AWS": ["*"]}), None, true),
            (json!({"AWS": "alice"}), Some("alice"), true),
            (json!({"AWS": "alice"}), Some("bob"), false),
            (json!({"AWS": "alice"}), None, false),
            (json!({"AWS": "alice"}), Some("Alice"), false),
            (
                json!({"AWS": "arn:aws:iam::123456789012:user/alice"}),
                Some("alice"),
                true,
            ),
            (
                json!({"AWS": "arn:aws:iam:::user/alice"}),
                Some("alice"),
                true,
            ),
            (
                json!({"AWS": "arn:aws:iam:::user/alice"}),
                Some("bob"),
                false,
            ),
            (json!({"AWS": "arn:aws:iam:::user/alice"}), None, false),
            (
                json!({"AWS": ["bob", "arn:aws:iam::x:user/alice"]}),
                Some("alice"),
                true,
            ),
            (
                json!({"AWS": ["bob", "arn:aws:iam::x:user/alice"]}),
                Some("bob"),
                true,
            ),
            (
                json!({"AWS": ["bob", "arn:aws:iam::x:user/alice"]}),
                Some("carol"),
                false,
            ),
            (json!({"AWS": "arn:aws:iam::acct:root"}), Some("acct"), true),
            (
                json!({"AWS": "arn:aws:iam::acct:root"}),
                Some("root"),
                false,
            ),
            (
                json!({"AWS": "arn:aws:iam::1:role/alice"}),
                Some("alice"),
                false,
            ),
            (
                json!({"AWS": "arn:aws:sts::1:assumed-role/r/alice"}),
                Some("alice"),
                false,
            ),
            (
                json!({"Service": "s3.amazonaws.com"}),
                Some("s3.amazonaws.com"),
                false,
            ),
            (json!({"CanonicalUser": "alice"}), Some("alice"), true),
            (
                json!({"CanonicalUser": "alice", "AWS": "bob"}),
                Some("bob"),
                true,
            ),
        ];
        for (principal, user, want) in cases {
            let p = policy(&allow_all_with(json!({"Principal": principal})));
            let got = eval(&p, user, "s3:GetObject", "arn:aws:s3:::b/k");
            let want = if want {
                Decision::Allow
            } else {
                Decision::NotApplicable
            };
            assert_eq!(got, want, "{principal} vs {user:?}");
        }
    }

    #[test]
    fn not_principal_applies_to_everyone_else() {
        let p = stmt_policy(json!({
            "Effect": "Deny",
            "NotPrincipal": {"AWS": ["alice", "arn:aws:iam:::user/bob"]},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
        }));
        let r = "arn:aws:s3:::b/k";
        assert_eq!(
            eval(&p, Some("alice"), "s3:GetObject", r),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, Some("bob"), "s3:GetObject", r),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, Some("carol"), "s3:GetObject", r),
            Decision::ExplicitDeny
        );
        assert_eq!(eval(&p, None, "s3:GetObject", r), Decision::ExplicitDeny);

        let star = stmt_policy(json!({
            "Effect": "Deny",
            "NotPrincipal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/*"
        }));
        assert_eq!(
            eval(&star, None, "s3:GetObject", r),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&star, Some("x"), "s3:GetObject", r),
            Decision::NotApplicable
        );
    }

    #[test]
    fn ceph_allow_notprincipal_is_malformed() {
        // ceph/s3-tests test_bucket_policy_allow_notprincipal
        let doc = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "NotPrincipal": {"AWS": "*"},
                "Action": "s3:ListBucket",
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
            }]
        });
        assert_eq!(
            parse_err(&doc.to_string()),
            "Invalid combination of elements: NotPrincipal with Effect Allow"
        );
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = stmt_policy(json!({
            "Effect": "Allow",
            "Principal": "*",
            "NotAction": ["s3:Delete*", "s3:Put*"],
            "Resource": "arn:aws:s3:::b/*"
        }));
        let r = "arn:aws:s3:::b/k";
        assert_eq!(eval(&p, None, "s3:GetObject", r), Decision::Allow);
        assert_eq!(
            eval(&p, None, "s3:DeleteObject", r),
            Decision::NotApplicable
        );
        assert_eq!(eval(&p, None, "s3:PutObject", r), Decision::NotApplicable);

        let p = stmt_policy(json!({
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "NotResource": ["arn:aws:s3:::b/secret/*", "arn:aws:s3:::b/private"]
        }));
        assert_eq!(
            eval(&p, None, "s3:GetObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, None, "s3:GetObject", "arn:aws:s3:::b"),
            Decision::Allow
        );
        assert_eq!(
            eval(&p, None, "s3:GetObject", "arn:aws:s3:::b/secret/x"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, None, "s3:GetObject", "arn:aws:s3:::b/private"),
            Decision::NotApplicable
        );
        assert_eq!(
            eval(&p, None, "s3:GetObject", "arn:aws:s3:::b/private2"),
            Decision::Allow
        );
    }

    #[test]
    fn deny_beats_allow_in_any_order() {
        let allow = json!({
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/*"
        });
        let deny = json!({
            "Effect": "Deny",
            "Principal": {"AWS": "mallory"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*"
        });
        for statements in [json!([allow, deny]), json!([deny, allow])] {
            let p = policy(&json!({"Statement": statements}));
            let r = "arn:aws:s3:::b/k";
            assert_eq!(
                eval(&p, Some("mallory"), "s3:GetObject", r),
                Decision::ExplicitDeny
            );
            assert_eq!(
                eval(&p, Some("mallory"), "s3:PutObject", r),
                Decision::Allow
            );
            assert_eq!(eval(&p, Some("alice"), "s3:GetObject", r), Decision::Allow);
            assert_eq!(
                eval(&p, None, "s3:GetObject", "arn:aws:s3:::b"),
                Decision::NotApplicable
            );
        }
    }

    #[test]
    fn single_statement_object_is_accepted() {
        let p = policy(&json!({
            "Statement": {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteBucket",
                "Resource": "arn:aws:s3:::b"
            }
        }));
        assert_eq!(
            eval(&p, Some("a"), "s3:DeleteBucket", "arn:aws:s3:::b"),
            Decision::ExplicitDeny
        );
        assert_eq!(
            eval(&p, Some("a"), "s3:DeleteObject", "arn:aws:s3:::b"),
            Decision::NotApplicable
        );
    }

    /// Evaluates an Allow-everything statement guarded by `{op: {key: values}}` against
    /// `context`: true when the condition holds.
    fn condition_holds(op: &str, key: &str, values: &Value, context: &[(&str, &[&str])]) -> bool {
        let p = policy(&allow_all_with(json!({"Condition": {op: {key: values}}})));
        match eval_full(
            &p,
            Some("u"),
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &ctx(context),
        ) {
            Decision::Allow => true,
            Decision::NotApplicable => false,
            Decision::ExplicitDeny => panic!("an Allow policy denied"),
        }
    }

    #[test]
    fn condition_operators() {
        // (operator, policy values, request values (None = key absent), condition holds)
        type Case = (&'static str, Value, Option<&'static [&'static str]>, bool);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // StringEquals: exact, case-sensitive; values OR-ed.
            ("StringEquals", json!("abc"), Some(&["abc"]), true),
            ("StringEquals", json!("abc"), Some(&["ABC"]), false),
            ("StringEquals", json!("a*"), Some(&["abc"]), false),
            ("StringEquals", json!("a*"), Some(&["a*"]), true),
            ("StringEquals", json!(["x", "abc"]), Some(&["abc"]), true),
            ("StringEquals", json!("abc"), None, false),
            ("StringEquals", json!(10), Some(&["10"]), true),
            ("StringEquals", json!(true), Some(&["true"]), true),
            // StringNotEquals: must match none; absent key = true (AWS).
            ("StringNotEquals", json!("abc"), Some(&["abc"]), false),
            ("StringNotEquals", json!("abc"), Some(&["abd"]), true),
            ("StringNotEquals", json!(["x", "abc"]), Some(&["abc"]), false),
            ("StringNotEquals", json!(["x", "y"]), Some(&["abc"]), true),
            ("StringNotEquals", json!("abc"), None, true),
            // IgnoreCase
            ("StringEqualsIgnoreCase", json!("AbC"), Some(&["aBc"]), true),
            ("StringEqualsIgnoreCase", json!("AbC"), Some(&["abd"]), false),
            ("StringEqualsIgnoreCase", json!("AbC"), None, false),
            ("StringNotEqualsIgnoreCase", json!("AbC"), Some(&["aBc"]), false),
            ("StringNotEqualsIgnoreCase", json!("AbC"), Some(&["x"]), true),
            ("StringNotEqualsIgnoreCase", json!("AbC"), None, true),
            // Like
            ("StringLike", json!("public/*"), Some(&["public/a/b"]), true),
            ("StringLike", json!("public/*"), Some(&["Public/a"]), false),
            ("StringLike", json!("?.txt"), Some(&["a.txt"]), true),
            ("StringLike", json!(["x*", "y*"]), Some(&["yes"]), true),
            ("StringLike", json!("public/*"), None, false),
            ("StringNotLike", json!("public/*"), Some(&["public/a"]), false),
            ("StringNotLike", json!("public/*"), Some(&["private/a"]), true),
            ("StringNotLike", json!(["a*", "b*"]), Some(&["bee"]), false),
            ("StringNotLike", json!("public/*"), None, true),
            // Numeric
            ("NumericEquals", json!("10"), Some(&["10"]), true),
            ("NumericEquals", json!(10), Some(&["10.0"]), true),
            ("NumericEquals", json!("10"), Some(&["11"]), false),
            ("NumericEquals", json!("10"), Some(&["ten"]), false),
            ("NumericEquals", json!("10"), None, false),
            ("NumericNotEquals", json!("10"), Some(&["10"]), false),
            ("NumericNotEquals", json!("10"), Some(&["11"]), true),
            ("NumericNotEquals", json!(["10", "11"]), Some(&["11"]), false),
            ("NumericNotEquals", json!("10"), None, true),
            ("NumericLessThan", json!("10"), Some(&["9"]), true),
            ("NumericLessThan", json!("10"), Some(&["10"]), false),
            ("NumericLessThan", json!("10"), None, false),
            ("NumericLessThanEquals", json!("10"), Some(&["10"]), true),
            ("NumericLessThanEquals", json!("10"), Some(&["11"]), false),
            ("NumericGreaterThan", json!("10"), Some(&["11"]), true),
            ("NumericGreaterThan", json!("10"), Some(&["10"]), false),
            ("NumericGreaterThan", json!(-1.5), Some(&["-1"]), true),
            ("NumericGreaterThanEquals", json!("10"), Some(&["10"]), true),
            ("NumericGreaterThanEquals", json!("10"), Some(&["9.99"]), false),
            ("NumericGreaterThanEquals", json!("10"), None, false),
            // Dates: ISO 8601 and epoch seconds compared as instants.
            ("DateEquals", json!("2020-01-01T00:00:00Z"), Some(&["1577836800"]), true),
            ("DateEquals", json!(1_577_836_800), Some(&["2020-01-01T00:00:00Z"]), true),
            ("DateEquals", json!("2020-01-01T01:00:00+01:00"), Some(&["2020-01-01T00:00:00Z"]), true),
            ("DateEquals", json!("2020-01-01"), Some(&["2020-01-01T00:00:00.000Z"]), true),
            ("DateEquals", json!("2020-01-01"), Some(&["2020-01-01T00:00:01Z"]), false),
            ("DateEquals", json!("2020-01-01"), Some(&["garbage"]), false),
            ("DateEquals", json!("2020-01-01"), None, false),
            ("DateNotEquals", json!("2020-01-01"), Some(&["2020-01-02"]), true),
            ("DateNotEquals", json!("2020-01-01"), Some(&["2020-01-01"]), false),
            ("DateNotEquals", json!("2020-01-01"), None, true),
            ("DateLessThan", json!("2020-01-01T00:00:00Z"), Some(&["2019-12-31T23:59:59Z"]), true),
            ("DateLessThan", json!("2020-01-01T00:00:00Z"), Some(&["2020-01-01T00:00:00Z"]), false),
            ("DateLessThan", json!("2020-01-01T00:00:00Z"), None, false),
            ("DateLessThanEquals", json!("2020-01-01T00:00:00Z"), Some(&["2020-01-01T00:00:00Z"]), true),
            ("DateLessThanEquals", json!("2020-01-01T00:00:00Z"), Some(&["2020-01-01T00:00:00.001Z"]), false),
            ("DateGreaterThan", json!("2020-01-01T00:00:00Z"), Some(&["2020-01-01T00:00:00.5Z"]), true),
            ("DateGreaterThan", json!("2020-01-01T00:00:00Z"), Some(&["2019-06-01"]), false),
            ("DateGreaterThanEquals", json!("2020-01-01T00:00:00Z"), Some(&["20200101T000000Z"]), true),
            ("DateGreaterThanEquals", json!("2020-01-01T00:00:00Z"), Some(&["2019-12-31T23:59:59Z"]), false),
            // Bool
            ("Bool", json!("true"), Some(&["true"]), true),
            ("Bool", json!(true), Some(&["TRUE"]), true),
            ("Bool", json!("false"), Some(&["true"]), false),
            ("Bool", json!(false), Some(&["false"]), true),
            ("Bool", json!("true"), Some(&["yes"]), false),
            ("Bool", json!("true"), None, false),
            // IP addresses
            ("IpAddress", json!("192.168.1.0/24"), Some(&["192.168.1.77"]), true),
            ("IpAddress", json!("192.168.1.0/24"), Some(&["192.168.2.1"]), false),
            ("IpAddress", json!("192.168.1.5"), Some(&["192.168.1.5"]), true),
            ("IpAddress", json!("192.168.1.5"), Some(&["192.168.1.6"]), false),
            ("IpAddress", json!("0.0.0.0/0"), Some(&["8.8.8.8"]), true),
            ("IpAddress", json!("10.1.2.3/8"), Some(&["10.200.0.1"]), true),
            ("IpAddress", json!("2001:db8::/32"), Some(&["2001:db8:1::5"]), true),
            ("IpAddress", json!("2001:db8::/32"), Some(&["2001:db9::5"]), false),
            ("IpAddress", json!("::/0"), Some(&["::1"]), true),
            ("IpAddress", json!("2001:db8::/32"), Some(&["192.168.1.1"]), false),
            ("IpAddress", json!("192.168.1.0/24"), Some(&["::ffff:192.168.1.9"]), true),
            ("IpAddress", json!("::ffff:0:0/96"), Some(&["1.2.3.4"]), true),
            ("IpAddress", json!(["10.0.0.0/8", "192.168.0.0/16"]), Some(&["192.168.9.9"]), true),
            ("IpAddress", json!("192.168.1.0/24"), Some(&["not-an-ip"]), false),
            ("IpAddress", json!("192.168.1.0/24"), None, false),
            ("NotIpAddress", json!("192.168.1.0/24"), Some(&["192.168.1.77"]), false),
            ("NotIpAddress", json!("192.168.1.0/24"), Some(&["10.0.0.1"]), true),
            ("NotIpAddress", json!("2001:db8::/32"), Some(&["2001:db8::1"]), false),
            ("NotIpAddress", json!("192.168.1.0/24"), None, true),
            // ARNs
            ("ArnEquals", json!("arn:aws:iam::*:user/a"), Some(&["arn:aws:iam::1:user/a"]), true),
            ("ArnLike", json!("arn:aws:iam::*:user/a"), Some(&["arn:aws:iam::1:user/b"]), false),
            ("ArnLike", json!("arn:aws:iam::*:user/a"), None, false),
            ("ArnNotEquals", json!("arn:aws:iam::*:user/a"), Some(&["arn:aws:iam::1:user/a"]), false),
            ("ArnNotLike", json!("arn:aws:iam::*:user/a"), Some(&["arn:aws:iam::1:user/b"]), true),
            ("ArnNotLike", json!("arn:aws:iam::*:user/a"), None, true),
            // Binary
            ("BinaryEquals", json!("QmluYXJ5"), Some(&["QmluYXJ5"]), true),
            ("BinaryEquals", json!("QmluYXJ5"), Some(&["QmluYXJ6"]), false),
            // Null
            ("Null", json!("true"), None, true),
            ("Null", json!("true"), Some(&["x"]), false),
            ("Null", json!("false"), None, false),
            ("Null", json!("false"), Some(&["x"]), true),
            ("Null", json!(true), Some(&[]), true),
            // IfExists: absent key = true, present key = the plain operator.
            ("StringEqualsIfExists", json!("abc"), None, true),
            ("StringEqualsIfExists", json!("abc"), Some(&["abc"]), true),
            ("StringEqualsIfExists", json!("abc"), Some(&["x"]), false),
            ("StringNotEqualsIfExists", json!("abc"), Some(&["abc"]), false),
            ("StringNotEqualsIfExists", json!("abc"), None, true),
            ("NumericLessThanIfExists", json!("5"), None, true),
            ("NumericLessThanIfExists", json!("5"), Some(&["6"]), false),
            ("BoolIfExists", json!("true"), None, true),
            ("BoolIfExists", json!("true"), Some(&["false"]), false),
            ("IpAddressIfExists", json!("10.0.0.0/8"), None, true),
            ("IpAddressIfExists", json!("10.0.0.0/8"), Some(&["11.0.0.1"]), false),
            ("DateLessThanIfExists", json!("2020-01-01"), None, true),
            ("ArnLikeIfExists", json!("arn:*"), None, true),
            // Set operators on multi-valued keys.
            ("ForAnyValue:StringEquals", json!(["a", "b"]), Some(&["x", "b"]), true),
            ("ForAnyValue:StringEquals", json!(["a", "b"]), Some(&["x", "y"]), false),
            ("ForAnyValue:StringEquals", json!(["a", "b"]), None, false),
            ("ForAnyValue:StringEqualsIfExists", json!(["a", "b"]), None, true),
            ("ForAllValues:StringEquals", json!(["a", "b"]), Some(&["a", "b"]), true),
            ("ForAllValues:StringEquals", json!(["a", "b"]), Some(&["a", "x"]), false),
            ("ForAllValues:StringEquals", json!(["a", "b"]), None, true),
            ("ForAllValues:StringLike", json!("key1*"), Some(&["key1:a", "key1:b"]), true),
            ("ForAllValues:StringNotLike", json!("key1*"), Some(&["key1:legal"]), false),
            ("ForAllValues:StringNotLike", json!("key1*"), Some(&["key2:audit"]), true),
            ("ForAllValues:StringNotLike", json!("key1*"), Some(&["key1:a", "key2:b"]), false),
            ("ForAllValues:StringNotLike", json!("key1*"), None, true),
            ("ForAnyValue:StringNotLike", json!("key1*"), Some(&["key1:a", "key2:b"]), true),
            ("ForAnyValue:StringNotLike", json!("key1*"), Some(&["key1:a"]), false),
            ("ForAnyValue:StringNotLike", json!("key1*"), None, false),
            ("ForAnyValue:NumericGreaterThan", json!(5), Some(&["1", "9"]), true),
            ("ForAllValues:NumericGreaterThan", json!(5), Some(&["1", "9"]), false),
            // Plain operators on several request values: any value matching counts.
            ("StringEquals", json!("b"), Some(&["a", "b"]), true),
            ("StringNotEquals", json!("b"), Some(&["a", "b"]), false),
            // An empty value list counts as an absent key.
            ("StringEquals", json!("abc"), Some(&[]), false),
            ("StringNotEquals", json!("abc"), Some(&[]), true),
        ];
        for (op, values, request, want) in cases {
            let context: Vec<(&str, &[&str])> = request.map(|r| vec![("k", r)]).unwrap_or_default();
            assert_eq!(
                condition_holds(op, "k", &values, &context),
                want,
                "{op}: {values} vs {request:?}"
            );
        }
    }

    #[test]
    fn condition_keys_are_case_insensitive() {
        assert!(condition_holds(
            "StringEquals",
            "S3:Prefix",
            &json!("x"),
            &[("s3:prefix", &["x"])]
        ));
        assert!(condition_holds(
            "Bool",
            "aws:SecureTransport",
            &json!("true"),
            &[("aws:securetransport", &["true"])]
        ));
    }

    #[test]
    fn conditions_are_anded_across_keys_and_operators() {
        let p = policy(&allow_all_with(json!({"Condition": {
            "StringEquals": {"a": "1", "b": "2"},
            "Bool": {"c": "true"}
        }})));
        let r = "arn:aws:s3:::b/k";
        let run = |c: &[(&str, &[&str])]| eval_full(&p, None, "s3:GetObject", r, &ctx(c));
        assert_eq!(
            run(&[("a", &["1"]), ("b", &["2"]), ("c", &["true"])]),
            Decision::Allow
        );
        assert_eq!(
            run(&[("a", &["1"]), ("b", &["3"]), ("c", &["true"])]),
            Decision::NotApplicable
        );
        assert_eq!(
            run(&[("a", &["1"]), ("b", &["2"]), ("c", &["false"])]),
            Decision::NotApplicable
        );
        assert_eq!(
            run(&[("a", &["1"]), ("b", &["2"])]),
            Decision::NotApplicable
        );
    }

    fn ssec_policy(condition: Value) -> BucketPolicy {
        policy(&json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyUnEncryptedObjectUploads",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::b/*",
                "Condition": condition
            }]
        }))
    }

    #[test]
    fn ceph_ssec_null_policy() {
        let p = ssec_policy(json!({
            "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}
        }));
        let r = "arn:aws:s3:::b/foo";
        let without = HashMap::new();
        let with = ctx(&[(
            "s3:x-amz-server-side-encryption-customer-algorithm",
            &["AES256"],
        )]);
        assert_eq!(
            eval_full(&p, Some("u"), "s3:PutObject", r, &without),
            Decision::ExplicitDeny
        );
        assert_eq!(
            eval_full(&p, Some("u"), "s3:PutObject", r, &with),
            Decision::NotApplicable
        );
        assert_eq!(
            eval_full(&p, Some("u"), "s3:GetObject", r, &without),
            Decision::NotApplicable
        );
    }

    #[test]
    fn ceph_ssec_string_not_equals_policy() {
        let p = ssec_policy(json!({
            "StringNotEquals": {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}
        }));
        let r = "arn:aws:s3:::b/foo";
        let key = "s3:x-amz-server-side-encryption-customer-algorithm";
        let run = |c: &HashMap<String, Vec<String>>| eval_full(&p, None, "s3:PutObject", r, c);
        assert_eq!(run(&ctx(&[(key, &["AES256"])])), Decision::NotApplicable);
        assert_eq!(run(&ctx(&[(key, &["AES128"])])), Decision::ExplicitDeny);
        // Absent header: StringNotEquals holds, so the upload is denied.
        assert_eq!(run(&HashMap::new()), Decision::ExplicitDeny);
    }

    #[test]
    fn secure_transport_deny() {
        let p = policy(&json!({
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/*"
                },
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}
                }
            ]
        }));
        let r = "arn:aws:s3:::b/k";
        let plain = ctx(&[("aws:securetransport", &["false"])]);
        let tls = ctx(&[("aws:securetransport", &["true"])]);
        assert_eq!(
            eval_full(&p, None, "s3:GetObject", r, &plain),
            Decision::ExplicitDeny
        );
        assert_eq!(
            eval_full(&p, None, "s3:GetObject", r, &tls),
            Decision::Allow
        );
        assert_eq!(
            eval_full(&p, None, "s3:GetObject", r, &HashMap::new()),
            Decision::Allow
        );
    }

    #[test]
    fn list_prefix_condition() {
        let p = stmt_policy(json!({
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam:::user/alice"},
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": "public/*"}}
        }));
        let r = "arn:aws:s3:::b";
        let run = |user, c: &[(&str, &[&str])]| eval_full(&p, user, "s3:ListBucket", r, &ctx(c));
        assert_eq!(
            run(Some("alice"), &[("s3:prefix", &["public/"])]),
            Decision::Allow
        );
        assert_eq!(
            run(Some("alice"), &[("s3:prefix", &["public/a/b"])]),
            Decision::Allow
        );
        assert_eq!(
            run(Some("alice"), &[("s3:prefix", &["private/"])]),
            Decision::NotApplicable
        );
        assert_eq!(run(Some("alice"), &[]), Decision::NotApplicable);
        assert_eq!(
            run(Some("bob"), &[("s3:prefix", &["public/"])]),
            Decision::NotApplicable
        );
        assert_eq!(
            run(None, &[("s3:prefix", &["public/"])]),
            Decision::NotApplicable
        );
    }

    #[test]
    fn dates() {
        let day = 86_400 * NANOS_PER_SEC;
        let cases: [(&str, Option<i128>); 24] = [
            ("0", Some(0)),
            ("1577836800", Some(18_262 * day)),
            ("-86400", Some(-day)),
            ("1970-01-01", Some(0)),
            ("1970-01-02", Some(day)),
            ("2020-01-01", Some(18_262 * day)),
            ("2020-01-01T00:00:00Z", Some(18_262 * day)),
            ("2020-01-01T00:00Z", Some(18_262 * day)),
            ("2020-01-01T00:00:00", Some(18_262 * day)),
            ("20200101T000000Z", Some(18_262 * day)),
            ("2020-01-01T02:30:00+02:30", Some(18_262 * day)),
            ("2019-12-31T21:00:00-0300", Some(18_262 * day)),
            ("2020-01-01T00:00:00.25Z", Some(18_262 * day + 250_000_000)),
            (
                "2020-01-01T00:00:00.1234567891Z",
                Some(18_262 * day + 123_456_789),
            ),
            ("2000-02-29", Some(11_016 * day)),
            ("1900-02-29", None),
            ("2020-13-01", None),
            ("2020-00-10", None),
            ("2020-01-01T24:00:00Z", None),
            ("2020-01-01T00:00:00.Z", None),
            ("2020-01-01T00:00:00Zjunk", None),
            ("2020-01-01X", None),
            ("", None),
            ("99999999999999999999999", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_date(s), want, "{s:?}");
        }
    }

    #[test]
    fn cidrs() {
        let cases = [
            ("10.0.0.0/8", "10.255.255.255", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.1/32", "10.0.0.1", true),
            ("10.0.0.1/32", "10.0.0.2", false),
            ("10.0.0.1/31", "10.0.0.0", true),
            ("0.0.0.0/0", "255.255.255.255", true),
            ("::/0", "ffff::1", true),
            ("fe80::/10", "fe80::1", true),
            ("fe80::/10", "fec0::1", false),
            ("2001:db8::1", "2001:db8::1", true),
            ("2001:db8::1/128", "2001:db8::2", false),
        ];
        for (net, ip, want) in cases {
            let net = parse_cidr(net).unwrap_or_else(|| panic!("bad cidr {net}"));
            let ip = parse_request_ip(ip).unwrap_or_else(|| panic!("bad ip {ip}"));
            assert_eq!(net.contains(ip), want, "{net:?} {ip}");
        }
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "10.0.0.0/0008",
            "1.2.3",
            "::/200",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
        assert_eq!(parse_request_ip("[::1]"), parse_request_ip("::1"));
        assert!(parse_request_ip("::1").is_some());
        assert_eq!(parse_request_ip("1.2.3.4/24"), parse_request_ip("1.2.3.4"));
    }

    #[test]
    fn numbers() {
        for (s, want) in [
            ("10", Some(10.0)),
            (" 10 ", Some(10.0)),
            ("-1.5", Some(-1.5)),
            ("1e3", Some(1000.0)),
            ("NaN", None),
            ("inf", None),
            ("infinity", None),
            ("1e999", None),
            ("", None),
            ("0x10", None),
        ] {
            assert_eq!(parse_number(s), want, "{s:?}");
        }
    }

    #[test]
    fn actions_for_operations() {
        let cases = [
            ("GetObject", "s3:GetObject"),
            ("HeadObject", "s3:GetObject"),
            ("PutObject", "s3:PutObject"),
            ("PostObject", "s3:PutObject"),
            ("CopyObject", "s3:PutObject"),
            ("CreateMultipartUpload", "s3:PutObject"),
            ("UploadPart", "s3:PutObject"),
            ("UploadPartCopy", "s3:PutObject"),
            ("CompleteMultipartUpload", "s3:PutObject"),
            ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
            ("ListParts", "s3:ListMultipartUploadParts"),
            ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
            ("ListObjects", "s3:ListBucket"),
            ("ListObjectsV2", "s3:ListBucket"),
            ("HeadBucket", "s3:ListBucket"),
            ("ListObjectVersions", "s3:ListBucketVersions"),
            ("DeleteObject", "s3:DeleteObject"),
            ("DeleteObjects", "s3:DeleteObject"),
            ("GetBucketLocation", "s3:GetBucketLocation"),
            ("CreateBucket", "s3:CreateBucket"),
            ("DeleteBucket", "s3:DeleteBucket"),
            ("PutBucketPolicy", "s3:PutBucketPolicy"),
            ("GetBucketPolicy", "s3:GetBucketPolicy"),
            ("DeleteBucketPolicy", "s3:DeleteBucketPolicy"),
            ("PutBucketVersioning", "s3:PutBucketVersioning"),
            ("GetBucketVersioning", "s3:GetBucketVersioning"),
            ("GetObjectAcl", "s3:GetObjectAcl"),
            ("PutObjectAcl", "s3:PutObjectAcl"),
            ("GetBucketAcl", "s3:GetBucketAcl"),
            ("PutBucketAcl", "s3:PutBucketAcl"),
            ("PutBucketCors", "s3:PutBucketCORS"),
            ("GetBucketCors", "s3:GetBucketCORS"),
            ("DeleteBucketCors", "s3:PutBucketCORS"),
            ("GetObjectAttributes", "s3:GetObjectAttributes"),
            ("GetObjectTagging", "s3:GetObjectTagging"),
            ("PutObjectTagging", "s3:PutObjectTagging"),
            ("DeleteObjectTagging", "s3:DeleteObjectTagging"),
            ("ListBuckets", "s3:ListAllMyBuckets"),
            (
                "GetBucketLifecycleConfiguration",
                "s3:GetLifecycleConfiguration",
            ),
            ("DeleteBucketLifecycle", "s3:PutLifecycleConfiguration"),
            (
                "GetObjectLockConfiguration",
                "s3:GetBucketObjectLockConfiguration",
            ),
            ("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
            ("Frobnicate", "s3:Unknown"),
            ("", "s3:Unknown"),
            ("getobject", "s3:Unknown"),
        ];
        for (op, want) in cases {
            assert_eq!(action_for(op), want, "{op}");
        }
    }

    #[test]
    fn versioned_actions() {
        let cases = [
            ("s3:GetObject", Some("s3:GetObjectVersion")),
            ("GetObject", Some("s3:GetObjectVersion")),
            ("s3:DeleteObject", Some("s3:DeleteObjectVersion")),
            ("s3:GetObjectAcl", Some("s3:GetObjectVersionAcl")),
            ("s3:PutObjectAcl", Some("s3:PutObjectVersionAcl")),
            ("s3:GetObjectTagging", Some("s3:GetObjectVersionTagging")),
            ("s3:PutObjectTagging", Some("s3:PutObjectVersionTagging")),
            (
                "s3:DeleteObjectTagging",
                Some("s3:DeleteObjectVersionTagging"),
            ),
            (
                "s3:GetObjectAttributes",
                Some("s3:GetObjectVersionAttributes"),
            ),
            ("s3:PutObject", None),
            ("s3:ListBucket", None),
            ("s3:Unknown", None),
        ];
        for (action, want) in cases {
            assert_eq!(versioned_action(action), want, "{action}");
        }
        // Every version variant is itself a valid policy action.
        for op in [
            "GetObject",
            "DeleteObject",
            "GetObjectAcl",
            "PutObjectTagging",
        ] {
            let action = versioned_action(action_for(op)).unwrap_or("none");
            assert!(validate_action(action).is_ok(), "{action}");
        }
    }

    #[test]
    fn version_specific_actions_need_their_own_grant() {
        let p = policy(&allow_all_with(json!({"Action": "s3:GetObject"})));
        let r = "arn:aws:s3:::b/k";
        assert_eq!(eval(&p, None, "s3:GetObject", r), Decision::Allow);
        assert_eq!(
            eval(&p, None, "s3:GetObjectVersion", r),
            Decision::NotApplicable
        );
        let p = policy(&allow_all_with(json!({"Action": "s3:GetObject*"})));
        assert_eq!(eval(&p, None, "s3:GetObjectVersion", r), Decision::Allow);
    }

    #[test]
    fn hostile_input_never_panics() {
        let long_star = "*".repeat(5000);
        let long_key = "a".repeat(5000);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let inputs = [
            deep,
            "\u{0}".into(),
            "{\"Statement\": null}".into(),
            "{\"Version\": null, \"Statement\": {}}".into(),
            json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": null}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}).to_string(),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": format!("arn:aws:s3:::b/{long_star}a")}}).to_string(),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"DateEquals": {"k": "99999-01-01"}}}}).to_string(),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"NumericEquals": {"k": 1e308}}}}).to_string(),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"ForAllValues:": {"k": "v"}}}}).to_string(),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"IfExists": {"k": "v"}}}}).to_string(),
        ];
        for input in &inputs {
            if let Ok(p) = BucketPolicy::parse(input, B) {
                let context = ctx(&[(
                    "k",
                    &["-99999999999999999999", "9999-99-99", "::", &long_key],
                )]);
                let _ = eval_full(
                    &p,
                    None,
                    "s3:GetObject",
                    &format!("arn:aws:s3:::b/{long_key}"),
                    &context,
                );
            }
        }
        for s in [
            "",
            "-",
            "--1",
            "2020",
            "2020-",
            "2020-01-01T",
            "2020-01-01T00",
            "2020-01-01T00:00+",
            "é",
            "9999-12-31T23:59:60+23:59",
        ] {
            let _ = parse_date(s);
        }
        assert!(!wildcard_match(&format!("{long_star}b"), &long_key));
    }
}
