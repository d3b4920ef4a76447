//! The oslo.policy rule language: tokenizer, parser and the parsed form of a rule.
//!
//! Tokenizing follows oslo.policy: a rule is split on whitespace, leading `(` and
//! trailing `)` are peeled off each piece, and `and`, `or`, `not` (any case) are
//! keywords. Everything else is a check `<kind>:<match>`, split at the first `:`.
//! Precedence is oslo's: `not` binds tighter than `and`, which binds tighter than `or`.
//!
//! Unlike oslo.policy, which logs an unparsable rule and treats it as "never", a
//! malformed rule is reported as a [`RuleSyntaxError`], so a typo in `policy.yaml` is
//! caught when the file is loaded instead of silently locking everybody out.

use std::fmt;

/// How deeply `(` and `not` may nest inside one rule. Bounds the parser's and the
/// evaluator's recursion, so no input can exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// What is wrong with one rule string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleSyntaxError {
    /// A `(` that is never closed.
    #[error("unbalanced parenthesis: {open} '(' never closed")]
    UnclosedParenthesis {
        /// How many `(` are left open at the end of the rule.
        open: usize,
    },
    /// A `)` without a matching `(`.
    #[error("unbalanced parenthesis: ')' without a matching '('")]
    UnopenedParenthesis,
    /// `()` with nothing inside.
    #[error("empty parentheses")]
    EmptyParentheses,
    /// A piece that is neither a keyword nor `<kind>:<match>`.
    #[error("'{token}' is not a check: expected <kind>:<match>, '@' or '!'")]
    NotACheck {
        /// The piece as written.
        token: String,
    },
    /// A check kind this engine does not know.
    #[error("unknown check kind '{kind}' in '{token}': expected rule, role, is_admin, project_id, user_id, roles or a quoted literal")]
    UnknownCheckKind {
        /// The kind before the `:`.
        kind: String,
        /// The whole check as written.
        token: String,
    },
    /// oslo.policy's remote `http:`/`https:` checks, which this engine does not run.
    #[error("remote check '{token}' is not supported")]
    RemoteCheck {
        /// The whole check as written.
        token: String,
    },
    /// A check with nothing after the `:` (`role:`).
    #[error("empty '{kind}:' check: '{kind}:' needs a value")]
    EmptyMatch {
        /// The kind before the `:`.
        kind: String,
    },
    /// `is_admin:` with a literal other than `True` or `False`.
    #[error("'is_admin:{value}' can never match: is_admin is True or False")]
    BadIsAdmin {
        /// The value as written.
        value: String,
    },
    /// A `%` that does not start a `%(key)s` target reference.
    #[error("malformed target reference in '{token}': expected %(key)s")]
    BadTargetReference {
        /// The whole check as written.
        token: String,
    },
    /// The rule ends where a check was expected (`role:a and`).
    #[error("rule ends where a check was expected")]
    UnexpectedEnd,
    /// A token where it cannot stand (`and role:a`, `role:a role:b`).
    #[error("unexpected '{token}': {expected}")]
    UnexpectedToken {
        /// The token as written.
        token: String,
        /// What could have stood there.
        expected: &'static str,
    },
    /// More than [`MAX_NESTING`] levels of `(` and `not`.
    #[error("nested deeper than {limit} levels of parentheses and 'not'")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

/// A credential of the caller that a check can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    /// The project the token is scoped to.
    ProjectId,
    /// The user.
    UserId,
    /// The role names (a list: a check matches if any role equals the value).
    Roles,
    /// `True` or `False`.
    IsAdmin,
}

impl Attr {
    fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "project_id" => Some(Self::ProjectId),
            "user_id" => Some(Self::UserId),
            "roles" => Some(Self::Roles),
            "is_admin" => Some(Self::IsAdmin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::ProjectId => "project_id",
            Self::UserId => "user_id",
            Self::Roles => "roles",
            Self::IsAdmin => "is_admin",
        }
    }
}

/// One piece of a match value: literal text or a `%(key)s` reference to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Key(String),
}

/// The right-hand side of a check, with `%(key)s` references resolved per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template(pub(crate) Vec<Piece>);

impl Template {
    /// A template that is just `text`.
    pub(crate) fn text(text: &str) -> Self {
        Self(vec![Piece::Text(text.to_owned())])
    }

    /// A template that is just `%(key)s`.
    pub(crate) fn key(key: &str) -> Self {
        Self(vec![Piece::Key(key.to_owned())])
    }

    /// Parses `%(key)s` references and `%%` escapes, as Python's `%` formatting of a
    /// dict does.
    fn parse(text: &str, token: &str) -> Result<Self, RuleSyntaxError> {
        let bad = || RuleSyntaxError::BadTargetReference {
            token: token.to_owned(),
        };
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                literal.push('%');
                rest = tail;
                continue;
            }
            let inner = after.strip_prefix('(').ok_or_else(bad)?;
            let close = inner.find(')').ok_or_else(bad)?;
            let key = &inner[..close];
            let valid_key = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid_key {
                return Err(bad());
            }
            rest = inner[close + 1..].strip_prefix('s').ok_or_else(bad)?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Key(key.to_owned()));
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self(pieces))
    }

    /// Whether the template has no `%(key)s` references.
    fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Key(_) => return None,
            }
        }
        Some(out)
    }

    /// The value for one request; `None` when the target lacks a referenced key (the
    /// check then fails, as oslo.policy's does).
    pub(crate) fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Key(k) => out.push_str(&lookup(k)?),
            }
        }
        Some(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => f.write_str(&t.replace('%', "%%"))?,
                Piece::Key(k) => write!(f, "%({k})s")?,
            }
        }
        Ok(())
    }
}

/// A parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `@` or the empty rule.
    Always,
    /// `!`.
    Never,
    /// `rule:<name>`.
    Rule(String),
    /// `role:<name>` (case-insensitive, as Keystone compares roles).
    Role(Template),
    /// `<credential>:<value>`.
    Match(Attr, Template),
    /// `'<literal>':<value>`: the value must equal the literal.
    Literal(String, Template),
    /// `not <expr>`.
    Not(Box<Expr>),
    /// `<expr> and <expr> …`.
    And(Vec<Expr>),
    /// `<expr> or <expr> …`.
    Or(Vec<Expr>),
}

impl Expr {
    /// `rule:<name>`.
    pub(crate) fn rule(name: &str) -> Self {
        Self::Rule(name.to_owned())
    }

    /// `role:<name>`.
    pub(crate) fn role(name: &str) -> Self {
        Self::Role(Template::text(name))
    }

    /// Every `rule:` name this rule references, in order of appearance.
    pub(crate) fn references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_references(&mut out);
        out
    }

    fn collect_references<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Rule(name) => out.push(name),
            Self::Not(inner) => inner.collect_references(out),
            Self::And(items) | Self::Or(items) => {
                for item in items {
                    item.collect_references(out);
                }
            }
            Self::Always | Self::Never | Self::Role(_) | Self::Match(..) | Self::Literal(..) => {}
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, parenthesize: bool) -> fmt::Result {
        if parenthesize {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// Renders the rule in the policy language; parsing the text gives the same rule back.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("@"),
            Self::Never => f.write_str("!"),
            Self::Rule(name) => write!(f, "rule:{name}"),
            Self::Role(t) => write!(f, "role:{t}"),
            Self::Match(attr, t) => write!(f, "{}:{t}", attr.as_str()),
            Self::Literal(lit, t) => {
                let quote = if lit.contains('\'') { '"' } else { '\'' };
                write!(f, "{quote}{lit}{quote}:{t}")
            }
            Self::Not(inner) => {
                f.write_str("not ")?;
                inner.fmt_child(f, matches!(**inner, Self::And(_) | Self::Or(_)))
            }
            Self::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    item.fmt_child(f, matches!(item, Self::And(_) | Self::Or(_)))?;
                }
                Ok(())
            }
            Self::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    item.fmt_child(f, matches!(item, Self::Or(_)))?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(String),
}

impl Token {
    fn spelling(&self) -> &str {
        match self {
            Self::Open => "(",
            Self::Close => ")",
            Self::And => "and",
            Self::Or => "or",
            Self::Not => "not",
            Self::Check(text) => text,
        }
    }
}

/// oslo.policy's `_parse_tokenize`.
fn tokenize(rule: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for piece in rule.split_whitespace() {
        let clean = piece.trim_start_matches('(');
        tokens.extend(std::iter::repeat_n(Token::Open, piece.len() - clean.len()));
        let mut body = clean.trim_end_matches(')');
        let mut trailing = clean.len() - body.len();
        // A `%(key)` missing its `s` would lose its `)` to the paren count and be
        // reported as unbalanced; keep it so the reference itself is reported.
        let unterminated = body.rfind("%(").is_some_and(|at| !body[at..].contains(')'));
        if unterminated && trailing > 0 {
            body = &clean[..body.len() + 1];
            trailing -= 1;
        }
        if !body.is_empty() {
            tokens.push(match body.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(body.to_owned()),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, trailing));
    }
    tokens
}

/// oslo.policy's `_parse_check`, strict: anything it would log and turn into "never"
/// is an error here.
fn parse_check(token: &str) -> Result<Expr, RuleSyntaxError> {
    match token {
        "@" => return Ok(Expr::Always),
        "!" => return Ok(Expr::Never),
        _ => {}
    }
    let Some((kind, value)) = token.split_once(':') else {
        return Err(RuleSyntaxError::NotACheck {
            token: token.to_owned(),
        });
    };
    if kind == "http" || kind == "https" {
        return Err(RuleSyntaxError::RemoteCheck {
            token: token.to_owned(),
        });
    }
    let literal = quoted(kind);
    let attr = Attr::from_kind(kind);
    if kind != "rule" && kind != "role" && attr.is_none() && literal.is_none() {
        return Err(RuleSyntaxError::UnknownCheckKind {
            kind: kind.to_owned(),
            token: token.to_owned(),
        });
    }
    if value.is_empty() {
        return Err(RuleSyntaxError::EmptyMatch {
            kind: kind.to_owned(),
        });
    }
    if kind == "rule" {
        // oslo.policy does not substitute target values into rule names.
        return Ok(Expr::Rule(value.to_owned()));
    }
    let template = Template::parse(value, token)?;
    if let Some(lit) = literal {
        return Ok(Expr::Literal(lit.to_owned(), template));
    }
    match attr {
        None => Ok(Expr::Role(template)),
        Some(Attr::IsAdmin) => match template.literal() {
            Some(text) if text != "True" && text != "False" => {
                Err(RuleSyntaxError::BadIsAdmin { value: text })
            }
            _ => Ok(Expr::Match(Attr::IsAdmin, template)),
        },
        Some(attr) => Ok(Expr::Match(attr, template)),
    }
}

/// The text between matching quotes, if `kind` is a quoted literal.
fn quoted(kind: &str) -> Option<&str> {
    ['\'', '"'].into_iter().find_map(|q| {
        kind.strip_prefix(q)
            .and_then(|rest| rest.strip_suffix(q))
            .filter(|inner| !inner.contains(q))
    })
}

/// Parses one rule string. An empty (or all-blank) rule always passes, as in oslo.policy.
pub(crate) fn parse(rule: &str) -> Result<Expr, RuleSyntaxError> {
    let tokens = tokenize(rule);
    if tokens.is_empty() {
        return Ok(Expr::Always);
    }
    check_balance(&tokens)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or_expr()?;
    match parser.peek() {
        None => Ok(expr),
        // Balanced parentheses make a stray ')' impossible here.
        Some(token) => Err(RuleSyntaxError::UnexpectedToken {
            token: token.spelling().to_owned(),
            expected: "expected 'and' or 'or' between checks",
        }),
    }
}

fn check_balance(tokens: &[Token]) -> Result<(), RuleSyntaxError> {
    let mut open = 0usize;
    for token in tokens {
        match token {
            Token::Open => open += 1,
            Token::Close => {
                open = open
                    .checked_sub(1)
                    .ok_or(RuleSyntaxError::UnopenedParenthesis)?;
            }
            _ => {}
        }
    }
    if open > 0 {
        return Err(RuleSyntaxError::UnclosedParenthesis { open });
    }
    Ok(())
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    fn or_expr(&mut self) -> Result<Expr, RuleSyntaxError> {
        let mut items = vec![self.and_expr()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(match <[Expr; 1]>::try_from(items) {
            Ok([single]) => single,
            Err(items) => Expr::Or(items),
        })
    }

    fn and_expr(&mut self) -> Result<Expr, RuleSyntaxError> {
        let mut items = vec![self.unary()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(match <[Expr; 1]>::try_from(items) {
            Ok([single]) => single,
            Err(items) => Expr::And(items),
        })
    }

    fn descend(&mut self) -> Result<(), RuleSyntaxError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(RuleSyntaxError::TooDeep { limit: MAX_NESTING });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, RuleSyntaxError> {
        let expected = "expected a check, 'not' or '('";
        match self.next().cloned() {
            None => Err(RuleSyntaxError::UnexpectedEnd),
            Some(Token::Not) => {
                self.descend()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Some(Token::Open) => {
                if self.peek() == Some(&Token::Close) {
                    return Err(RuleSyntaxError::EmptyParentheses);
                }
                self.descend()?;
                let inner = self.or_expr()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    None => Err(RuleSyntaxError::UnexpectedEnd),
                    Some(other) => Err(RuleSyntaxError::UnexpectedToken {
                        token: other.spelling().to_owned(),
                        expected: "expected 'and', 'or' or ')'",
                    }),
                }
            }
            Some(Token::Check(text)) => parse_check(&text),
            Some(other) => Err(RuleSyntaxError::UnexpectedToken {
                token: other.spelling().to_owned(),
                expected,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn role(name: &str) -> Expr {
        Expr::role(name)
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("role:a or role:b and role:c").unwrap(),
            Expr::Or(vec![role("a"), Expr::And(vec![role("b"), role("c")])])
        );
    }

    #[test]
    fn not_binds_tighter_than_and() {
        assert_eq!(
            parse("not role:a and role:b").unwrap(),
            Expr::And(vec![Expr::Not(Box::new(role("a"))), role("b")])
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(
            parse("(role:a or role:b) and role:c").unwrap(),
            Expr::And(vec![Expr::Or(vec![role("a"), role("b")]), role("c")])
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            parse("role:a OR NOT role:b").unwrap(),
            Expr::Or(vec![role("a"), Expr::Not(Box::new(role("b")))])
        );
    }

    #[test]
    fn target_references_keep_their_parentheses() {
        assert_eq!(
            parse("(project_id:%(project_id)s)").unwrap(),
            Expr::Match(Attr::ProjectId, Template::key("project_id"))
        );
    }

    #[test]
    fn empty_and_blank_rules_always_pass() {
        assert_eq!(parse("").unwrap(), Expr::Always);
        assert_eq!(parse("  \t ").unwrap(), Expr::Always);
    }

    #[test]
    fn at_and_bang_are_always_and_never() {
        assert_eq!(parse("@").unwrap(), Expr::Always);
        assert_eq!(parse("!").unwrap(), Expr::Never);
    }

    #[test]
    fn quoted_literal_kind_compares_with_the_target() {
        assert_eq!(
            parse("'member':%(role.name)s").unwrap(),
            Expr::Literal("member".into(), Template::key("role.name"))
        );
    }

    #[test]
    fn templates_mix_text_references_and_escapes() {
        let t = Template::parse("a%%b-%(x)s-c", "tok").unwrap();
        assert_eq!(
            t.0,
            vec![
                Piece::Text("a%b-".into()),
                Piece::Key("x".into()),
                Piece::Text("-c".into())
            ]
        );
        assert_eq!(t.to_string(), "a%%b-%(x)s-c");
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        let cases = [
            ("(role:a", "unbalanced parenthesis: 1 '(' never closed"),
            ("role:a)", "unbalanced parenthesis: ')' without a matching '('"),
            ("()", "empty parentheses"),
            ("admin", "'admin' is not a check: expected <kind>:<match>, '@' or '!'"),
            ("project:%(project_id)s", "unknown check kind 'project' in 'project:%(project_id)s': expected rule, role, is_admin, project_id, user_id, roles or a quoted literal"),
            ("http://auth.example/check", "remote check 'http://auth.example/check' is not supported"),
            ("role:", "empty 'role:' check: 'role:' needs a value"),
            ("rule:", "empty 'rule:' check: 'rule:' needs a value"),
            ("is_admin:yes", "'is_admin:yes' can never match: is_admin is True or False"),
            ("project_id:%(project_id)", "malformed target reference in 'project_id:%(project_id)': expected %(key)s"),
            ("user_id:50%", "malformed target reference in 'user_id:50%': expected %(key)s"),
            ("role:a and", "rule ends where a check was expected"),
            ("and role:a", "unexpected 'and': expected a check, 'not' or '('"),
            ("role:a role:b", "unexpected 'role:b': expected 'and' or 'or' between checks"),
            ("(role:a role:b)", "unexpected 'role:b': expected 'and', 'or' or ')'"),
        ];
        for (rule, message) in cases {
            let err = parse(rule).expect_err(rule);
            assert_eq!(err.to_string(), message, "for rule {rule:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}role:a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(
            parse(&deep),
            Err(RuleSyntaxError::TooDeep { limit: MAX_NESTING })
        );
        let nots = format!("{}role:a", "not ".repeat(10_000));
        assert_eq!(
            parse(&nots),
            Err(RuleSyntaxError::TooDeep { limit: MAX_NESTING })
        );
    }

    #[test]
    fn nesting_up_to_the_limit_parses() {
        let rule = format!(
            "{}role:a{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(parse(&rule).unwrap(), role("a"));
    }

    /// Random well-formed rules, for round-trip and evaluation properties.
    pub(crate) fn arb_expr() -> impl Strategy<Value = Expr> {
        let name = prop::sample::select(vec!["a", "b", "admin", "member"]);
        let leaf = prop_oneof![
            Just(Expr::Always),
            Just(Expr::Never),
            name.clone().prop_map(Expr::role),
            Just(Expr::Match(Attr::IsAdmin, Template::text("True"))),
            Just(Expr::Match(Attr::IsAdmin, Template::text("False"))),
            Just(Expr::Match(Attr::ProjectId, Template::key("project_id"))),
            Just(Expr::Match(Attr::UserId, Template::key("user_id"))),
            Just(Expr::Match(Attr::ProjectId, Template::text("p1"))),
            name.prop_map(|n| Expr::Match(Attr::Roles, Template::text(n))),
            Just(Expr::Literal("p2".into(), Template::key("project_id"))),
            Just(Expr::Rule("admin_or_owner".into())),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
            ]
        })
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "(",
            ")",
            "((",
            "))",
            " and ",
            " or ",
            " not ",
            " AND ",
            " ",
            "role:a",
            "role:",
            "rule:default",
            "rule:",
            "@",
            "!",
            "is_admin:True",
            "is_admin:x",
            "project_id:%(project_id)s",
            "%(",
            "%",
            ")s",
            "'lit':",
            "\"x\":%(y)s",
            ":",
            "http:",
            "user_id:",
            "\t",
            "ü",
            "%%",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_text(text in ".*") {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_token_soup(text in token_soup()) {
            let _ = parse(&text);
        }

        #[test]
        fn displayed_rules_parse_back_to_themselves(expr in arb_expr()) {
            prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
        }
    }
}
