//! `{var}` interpolation in prompts, paths and values (`{{` and `}}` are literal braces).

use std::collections::BTreeMap;

/// A call's variables.
pub type Vars = BTreeMap<String, String>;

/// Checks that every `{` opens a well-formed `{name}` (letters, digits, `_`, `.`, `-`).
pub fn check(text: &str) -> Result<(), String> {
    parts(text, |_| ())
}

/// Renders `text` with `vars`; an unset variable renders as nothing.
pub fn render(text: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(text.len());
    // Text that passed `check` always renders; anything else renders up to its fault.
    let _ = parts(text, |p| match p {
        Part::Text(t) => out.push_str(t),
        Part::Var(v) => out.push_str(vars.get(v).map_or("", String::as_str)),
    });
    out
}

enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn parts<'a>(text: &'a str, mut f: impl FnMut(Part<'a>)) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        f(Part::Text(&rest[..i]));
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            f(Part::Text("{"));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            f(Part::Text("}"));
            rest = t;
        } else if tail.starts_with('}') {
            return Err(format!(
                "unmatched '}}' in {text:?} (write }}}} for a brace)"
            ));
        } else {
            let Some(end) = tail.find('}') else {
                return Err(format!("unclosed '{{' in {text:?}"));
            };
            let name = &tail[1..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(format!("{{{name}}} in {text:?} is not a variable name"));
            }
            f(Part::Var(name));
            rest = &tail[end + 1..];
        }
    }
    f(Part::Text(rest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_checks() {
        let vars: Vars = [("order.id".to_owned(), "A12".to_owned())].into();
        assert_eq!(
            render("your order {order.id} arrives {order.eta}.", &vars),
            "your order A12 arrives ."
        );
        assert_eq!(render("{{literal}}", &vars), "{literal}");
        assert!(check("ok {a_b.c-d}").is_ok());
        assert!(check("bad {").unwrap_err().contains("unclosed"));
        assert!(check("bad }").unwrap_err().contains("unmatched"));
        assert!(check("bad {a b}").unwrap_err().contains("not a variable"));
        assert!(check("bad {}").is_err());
    }
}
