//! `fetch`: an HTTP request to the designer's own service (`GET`, or `POST`
//! of a JSON object), whose JSON answer goes into a variable for `switch`
//! and templates. The engine only asks for it (a command) and reads the
//! answer (an event); the runtime makes the request, to hosts the server's
//! configuration allows, with the secrets (`${secrets.NAME}` in headers) it
//! holds.

use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;
use crate::flow::roots::Ty;
use crate::flow::span::{Span, Spanned};
use crate::flow::suggest::did_you_mean;

/// The longest a fetch may wait for its answer, per attempt.
pub const MAX_TIMEOUT_SECONDS: u64 = 30;

/// The most retries after a `5xx` or no answer.
pub const MAX_RETRIES: u32 = 5;

/// The types a `shape` field may have.
pub const SHAPE_TYPES: &[&str] = &["text", "number", "bool", "list", "map", "any"];

/// `fetch: {url, method, headers, body, into, timeout, retries, shape}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchAction {
    /// The http(s) URL, may embed `${expression}`
    /// (`https://crm.contoso.com/api/callers/${call.from.phone}`); its host
    /// must be allowed by the server's configuration (`--fetch-allow`).
    pub url: Text,
    /// `GET` (the default) or `POST` (which sends `body` as JSON).
    #[serde(default)]
    pub method: Option<Text>,
    /// Request headers: `Authorization: "Bearer ${secrets.crm_token}"`.
    /// `${secrets.NAME}` reads a secret of the server's configuration, and
    /// is never written in a timeline, a log or the session store.
    #[serde(default)]
    pub headers: Option<IndexMap<Text, Text>>,
    /// For `POST`: the JSON object sent, each value a text that may embed
    /// `${expression}`; a value that is one `${expression}` sends its value
    /// as it is (a number stays a number).
    #[serde(default)]
    pub body: Option<Spanned<IndexMap<Text, Text>>>,
    /// The variable the JSON answer goes into: `into: caller` is read as `vars.caller.vip`.
    pub into: Text,
    /// How long each attempt may wait for the answer before `on_timeout`, 1s to 30s. Default 5s.
    #[serde(default)]
    pub timeout: Option<Text>,
    /// How many more attempts after a `5xx` answer or a failed connection, 0 to 5. Default 1.
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// The fields of the answer later steps read, with their types (`text`,
    /// `number`, `bool`, `list`, `map`, `any`): `{vip: bool, name: text}`.
    /// With it, reading `vars.<into>.<field>` it does not list is an error at load.
    #[serde(default)]
    pub shape: Option<IndexMap<Text, Text>>,
}

/// `GET` or `POST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// `GET`.
    #[serde(rename = "GET")]
    Get,
    /// `POST` with a JSON body.
    #[serde(rename = "POST")]
    Post,
}

impl Method {
    /// As HTTP writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One part of a header value: text, or a secret the runtime fills in.
#[derive(Clone, Debug)]
pub enum HeaderPiece {
    /// Text that may embed `${expression}`.
    Template(Template),
    /// `${secrets.NAME}`.
    Secret(String),
}

/// `fetch`, compiled.
#[derive(Clone, Debug)]
pub struct Fetch {
    /// The URL.
    pub url: Template,
    /// Where the URL is written, for the checks that know the configuration.
    pub url_span: Span,
    /// The host, when the URL's text names it without an expression.
    pub host: Option<String>,
    /// `GET` or `POST`.
    pub method: Method,
    /// The headers, by name.
    pub headers: Vec<(String, Vec<HeaderPiece>)>,
    /// The secrets the headers read, with where each is written.
    pub secrets: Vec<(String, Span)>,
    /// The JSON object sent (`POST`).
    pub body: Vec<(String, Template)>,
    /// The variable the answer goes into.
    pub into: String,
    /// How long each attempt may take.
    pub timeout: Duration,
    /// More attempts after a `5xx` or no answer.
    pub retries: u32,
}

impl ActionType for Fetch {
    type Model = FetchAction;
    const DOC: &'static str =
        "Ask the designer's own service over HTTP (GET or POST JSON); its JSON answer goes into a variable.";
    const OUTCOMES: &'static [OutcomeField] = &[
        OutcomeField::Next,
        OutcomeField::OnFailure,
        OutcomeField::OnTimeout,
    ];
    const SHAPE: Shape = Shape::Data;
    const NEEDS_CALL: bool = false;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> =
        Some("if the service cannot be reached or refuses, the caller is hung up on");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

/// The type a `shape` field names.
fn shape_type(name: &str) -> Option<Ty> {
    Some(match name {
        "text" => Ty::Text,
        "number" => Ty::Float,
        "bool" => Ty::Bool,
        "list" => Ty::List,
        "map" | "any" => Ty::Any,
        _ => return None,
    })
}

/// The host of an http(s) URL's text, when it is written out before any
/// `${`: `Some(Ok(host))`; `Some(Err(why))` when the text is not such a
/// URL; `None` when an expression gives the host.
pub fn literal_host(url: &str) -> Option<Result<String, String>> {
    let fixed = url.split("${").next().unwrap_or_default();
    if fixed.is_empty() && !url.is_empty() {
        // `${vars.crm}/callers`: the base comes from a variable.
        return None;
    }
    let Some((scheme, rest)) = fixed.split_once("://") else {
        return Some(Err(format!("`{url}` is not an http(s) URL")));
    };
    if scheme != "http" && scheme != "https" {
        return Some(Err(format!(
            "`{scheme}://` is not http or https: a fetch speaks HTTP"
        )));
    }
    let end = rest.find(['/', '?', '#']);
    if end.is_none() && fixed.len() < url.len() {
        // `https://${vars.host}` or `https://crm.${vars.domain}/…`.
        return None;
    }
    let authority = &rest[..end.unwrap_or(rest.len())];
    let parsed = url::Url::parse(&format!("{scheme}://{authority}/"))
        .map_err(|e| format!("`{url}`: {e}"));
    Some(parsed.and_then(|u| {
        let host = u.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        Ok(match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    }))
}

/// Whether `name` is a header name HTTP accepts (a token).
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl CheckAction for Fetch {
    fn branch_names(_: &FetchAction) -> Vec<&Text> {
        Vec::new()
    }

    fn assigned_names(f: &FetchAction) -> Vec<String> {
        vec![f.into.value.clone()]
    }

    fn assigned_types(f: &FetchAction) -> Vec<(String, Ty)> {
        let ty = match &f.shape {
            Some(shape) => Ty::Record(
                shape
                    .iter()
                    .map(|(k, t)| (k.value.clone(), shape_type(&t.value).unwrap_or(Ty::Any)))
                    .collect(),
            ),
            None => Ty::Any,
        };
        vec![(f.into.value.clone(), ty)]
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<FetchAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let f = &a.value;
        let mut ok = true;
        let url = cx.template(&f.url, cals);
        let mut host = None;
        match literal_host(&f.url.value) {
            Some(Ok(h)) => host = Some(h),
            Some(Err(why)) => {
                let help = if f.url.value.contains("://") {
                    "a fetch speaks HTTP: start the URL with `https://` (or `http://`)".to_owned()
                } else {
                    format!("start it with `https://`: `https://{}`", f.url.value)
                };
                cx.error("callflow::fetch::url", f.url.span, why)
                    .label("not an http(s) URL")
                    .help(help);
                ok = false;
            }
            None => {}
        }
        let method = match &f.method {
            None => Method::Get,
            Some(m) => match m.value.to_ascii_uppercase().as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                other => {
                    cx.error(
                        "callflow::fetch::method",
                        m.span,
                        format!("`{}` is not a method a fetch makes", m.value),
                    )
                    .label("method")
                    .help(if other == "PUT" || other == "PATCH" {
                        "a fetch reads (`GET`) or asks (`POST` with a JSON body); use `POST`".to_owned()
                    } else {
                        "use `GET` (the default) or `POST`".to_owned()
                    });
                    ok = false;
                    Method::Get
                }
            },
        };
        let mut headers = Vec::new();
        let mut secrets = Vec::new();
        for (name, value) in f.headers.iter().flatten() {
            if !header_name(&name.value) {
                cx.error(
                    "callflow::fetch::header",
                    name.span,
                    format!("`{}` is not a header name", name.value),
                )
                .label("header name")
                .help("a header name is letters, digits and `-`, e.g. `Authorization` or `X-Api-Key`");
                ok = false;
                continue;
            }
            match cx.header_template(value, cals) {
                Some((pieces, used)) => {
                    secrets.extend(used);
                    headers.push((name.value.clone(), pieces));
                }
                None => ok = false,
            }
        }
        let mut body = Vec::new();
        if let Some(fields) = &f.body {
            if method == Method::Get {
                cx.error(
                    "callflow::fetch::method",
                    fields.span,
                    "a `GET` sends no body",
                )
                .label("body of a GET")
                .help("add `method: POST` to send it, or put the values in the URL");
                ok = false;
            }
            for (k, v) in &fields.value {
                match cx.template(v, cals) {
                    Some(t) => body.push((k.value.clone(), t)),
                    None => ok = false,
                }
            }
        }
        if f.into.value.is_empty() {
            cx.error("callflow::set::name", f.into.span, "`into` names no variable")
                .label("empty")
                .help("name the variable the answer goes into, e.g. `into: caller`, read back as `vars.caller.vip`");
            ok = false;
        } else if !cx.variable_name(&f.into) {
            ok = false;
        }
        for (k, t) in f.shape.iter().flatten() {
            if shape_type(&t.value).is_none() {
                let hint = did_you_mean(&t.value, SHAPE_TYPES.iter().copied())
                    .unwrap_or_else(|| format!("a field's type is one of {}", SHAPE_TYPES.join(", ")));
                cx.error(
                    "callflow::fetch::shape",
                    t.span,
                    format!("`{}` is not a type (field `{}`)", t.value, k.value),
                )
                .label("type")
                .help(hint);
                ok = false;
            }
        }
        let timeout = cx.duration_in(f.timeout.as_ref(), 5, Some((1, MAX_TIMEOUT_SECONDS)));
        let retries = match &f.retries {
            Some(r) if r.value > MAX_RETRIES => {
                cx.error(
                    "callflow::fetch::retries",
                    r.span,
                    format!("`retries` is {}, more than {MAX_RETRIES}", r.value),
                )
                .label("too many")
                .help(format!(
                    "retry at most {MAX_RETRIES} times: a caller waits in silence meanwhile"
                ));
                ok = false;
                0
            }
            Some(r) => r.value,
            None => 1,
        };
        if !ok {
            return None;
        }
        Some(Fetch {
            url: url?,
            url_span: f.url.span,
            host,
            method,
            headers,
            secrets,
            body,
            into: f.into.value.clone(),
            timeout: timeout?,
            retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::literal_host;

    #[test]
    fn hosts_written_out_are_found() {
        let h = |u: &str| literal_host(u).map(|r| r.map_err(|_| ()));
        assert_eq!(h("https://crm.contoso.com/api/${call.id}"), Some(Ok("crm.contoso.com".into())));
        assert_eq!(h("http://127.0.0.1:8081/x"), Some(Ok("127.0.0.1:8081".into())));
        assert_eq!(h("https://crm.contoso.com"), Some(Ok("crm.contoso.com".into())));
        assert_eq!(h("${vars.base}/callers"), None);
        assert_eq!(h("https://${vars.host}/x"), None);
        assert_eq!(h("ftp://files.contoso.com/x"), Some(Err(())));
        assert_eq!(h("crm.contoso.com/api"), Some(Err(())));
        assert_eq!(h("crm.contoso.com/api/${call.id}"), Some(Err(())));
    }

    #[test]
    fn the_policy_allows_hosts_ports_and_subdomains() {
        let p = super::FetchPolicy {
            allow: vec!["crm.contoso.com".into(), "*.fabrikam.com".into(), "127.0.0.1:8081".into()],
            secrets: None,
        };
        assert!(p.allows("crm.contoso.com", None));
        assert!(p.allows("CRM.contoso.com", Some(443)));
        assert!(p.allows("api.fabrikam.com", None));
        assert!(!p.allows("fabrikam.com", None));
        assert!(!p.allows("evilcontoso.com", None));
        assert!(p.allows("127.0.0.1", Some(8081)));
        assert!(!p.allows("127.0.0.1", Some(8082)));
        assert!(p.allows_authority("127.0.0.1:8081"));
        assert!(!p.allows_authority("crm.contoso.com.evil.net"));
        assert!(!super::FetchPolicy::default().allows("crm.contoso.com", None));
    }
}

/// What the server allows `fetch` steps: the hosts they may ask, and the
/// secrets their headers may read. The same policy checks flows at load
/// (when the configuration is known) and every request at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Allowed hosts: `crm.contoso.com` (any port), `crm.contoso.com:8443`,
    /// `*.contoso.com` (its subdomains), `127.0.0.1:8081`. Empty: none.
    pub allow: Vec<String>,
    /// The names of the configured secrets; `None` when not known (then
    /// the names headers read are not checked at load).
    pub secrets: Option<Vec<String>>,
}

impl FetchPolicy {
    /// Whether `host` (with `:port` when the URL gives one) may be asked.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            let (p_host, p_port) = match pattern.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    (h.to_owned(), p.parse::<u16>().ok())
                }
                _ => (pattern.clone(), None),
            };
            let p_host = p_host.trim_start_matches('[').trim_end_matches(']');
            let host_ok = match p_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host.trim_start_matches('[').trim_end_matches(']') == p_host,
            };
            host_ok && p_port.is_none_or(|p| Some(p) == port)
        })
    }

    /// [`allows`](Self::allows) for a `host[:port]` as [`literal_host`] gives it.
    pub fn allows_authority(&self, authority: &str) -> bool {
        match url::Url::parse(&format!("http://{authority}/")) {
            Ok(u) => self.allows(u.host_str().unwrap_or_default(), u.port()),
            Err(_) => false,
        }
    }
}
