//! Which selector a policy edit is about: a service token by name, or a certificate CN named
//! exactly by a `common_name` selector (a full-match regex that spells one CN, as opposed to a
//! pattern for a family of CNs), and how a new one is written.

/// Whether the `common_name` regex `pattern` (full match) names exactly `cn` rather than a
/// family of CNs: `device-a1`, `^device-a1$`, `device-a1\.corp`, and also `device-a1.corp`
/// (an unescaped dot is how people write a literal CN; it is read as the dot it means).
pub fn names_cn_exactly(pattern: &str, cn: &str) -> bool {
    cn_literal(pattern).is_some_and(|lit| lit == cn)
}

/// The literal a pattern spells, or `None` when it uses regex syntax beyond `^`, `$`, `.`
/// and escaped punctuation.
fn cn_literal(pattern: &str) -> Option<String> {
    let p = pattern.strip_prefix('^').unwrap_or(pattern);
    let p = match p.strip_suffix('$') {
        Some(rest) if !rest.ends_with('\\') => rest,
        _ => p,
    };
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => out.push(e),
                _ => return None,
            },
            '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `cn` as a full-match regex that matches only itself: the regex metacharacters escaped
/// (not `-`, which is literal outside a class, so the file stays readable).
pub(super) fn escape_cn(cn: &str) -> String {
    let mut out = String::with_capacity(cn.len() + 4);
    for c in cn.chars() {
        if matches!(
            c,
            '\\' | '.'
                | '+'
                | '*'
                | '?'
                | '('
                | ')'
                | '|'
                | '['
                | ']'
                | '{'
                | '}'
                | '^'
                | '$'
                | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Which selector an edit is about: a token by name, or a certificate CN named exactly.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sel<'a> {
    pub(super) key: &'static str,
    pub(super) name: &'a str,
}

impl<'a> Sel<'a> {
    pub(super) fn token(name: &'a str) -> Self {
        Self {
            key: "service_token",
            name,
        }
    }

    pub(super) fn cn(name: &'a str) -> Self {
        Self {
            key: "common_name",
            name,
        }
    }

    /// Whether a selector's string value names this credential.
    pub(super) fn names(&self, value: &str) -> bool {
        match self.key {
            "common_name" => names_cn_exactly(value, self.name),
            _ => value == self.name,
        }
    }

    /// The value written for this credential.
    pub(super) fn value(&self) -> String {
        match self.key {
            "common_name" => escape_cn(self.name),
            _ => self.name.to_string(),
        }
    }
}
