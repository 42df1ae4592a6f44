//! docs/CONTROL_API.md against the code: its table lists exactly the routes of [`ROUTES`],
//! and the fields it names for each body and answer are those the types serialize.

use std::collections::BTreeSet;

use serde_json::Value;
use time::macros::datetime;

use super::super::*;
use super::sample_server;

const DOC: &str = include_str!("../../../../docs/CONTROL_API.md");

/// A row of the doc's route table.
struct Row {
    methods: Vec<String>,
    path: String,
    body: String,
    answer: String,
}

/// The cells of a table line, split at the `|` that are not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.trim().trim_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => out.last_mut().unwrap().push(chars.next().unwrap()),
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The code spans (between backticks) of a text.
fn spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn rows() -> Vec<Row> {
    DOC.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let c = cells(l);
            let route = spans(&c[0])[0];
            let (methods, path) = route.split_once(' ').unwrap_or_else(|| panic!("no method and path in {route:?}"));
            let path = path.split('?').next().unwrap().to_owned();
            Row { methods: methods.split('|').map(str::to_owned).collect(), path, body: c[1].clone(), answer: c[2].clone() }
        })
        .collect()
}

/// The top-level field names a documented JSON shape such as `{"a","b":[{"c"}],"d":1}`
/// names: the quoted words right after `{` or `,` at the outer level (`a`, `b`, `d`).
fn keys(shape: &str) -> BTreeSet<String> {
    let (mut depth, mut last, mut out) = (0, ' ', BTreeSet::new());
    let mut chars = shape.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let word: String = chars.by_ref().take_while(|&c| c != '"').collect();
                if depth == 1 && matches!(last, '{' | ',') {
                    out.insert(word);
                }
            }
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if !c.is_whitespace() {
            last = c;
        }
    }
    out
}

/// The field names of a serialized value.
fn fields(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The first object shape among a cell's code spans.
fn shape(cell: &str) -> Option<&str> {
    spans(cell).into_iter().find(|s| s.starts_with('{'))
}

/// A serialized sample of what a route answers (the login stream is checked apart).
fn answer_sample(method: &str, path: &str) -> Option<Value> {
    let t = datetime!(2026-01-02 03:04:05 UTC);
    let v = match (method, path) {
        ("GET", "/v1/ping") => to_value(Ping { version: "v".into(), pid: 1, endpoint: "e".into() }),
        ("GET", "/v1/status") => to_value(Status { servers: vec![], endpoint: "e".into(), version: "v".into(), problems: vec![], signins: vec![] }),
        ("POST", "/v1/resolve") => to_value(Resolved { name: "n".into() }),
        ("POST", "/v1/import") => to_value(Imported { server: sample_server() }),
        ("POST", "/v1/servers/{name}/refresh") => to_value(Refreshed { server: sample_server() }),
        ("POST", "/v1/servers/{name}/logout") => to_value(LoggedOut { revoked: true }),
        ("DELETE", "/v1/servers/{name}") => to_value(ServerRemoved { removed: "n".into(), revoked: true }),
        ("POST", "/v1/servers") => to_value(Added { server: sample_server() }),
        ("GET", "/v1/hosts") => to_value(Hosts { hosts: vec![], usage: vec![] }),
        ("POST", "/v1/hosts") => to_value(HostAdded { host: "h".into(), key: Secret::new("k"), endpoint: "e".into() }),
        ("DELETE", "/v1/hosts/{name}") => to_value(HostRemoved { removed: "h".into() }),
        ("GET", "/v1/approvals") => to_value(Approvals { pending: vec![], decisions: vec![], ui_attached: true }),
        ("POST", "/v1/approvals/{id}") | ("DELETE", "/v1/decisions/{host}/{server}") | ("PUT", "/v1/policy/{host}/{server}") => to_value(Ack::OK),
        ("GET", "/v1/policy/{host}/{server}") => to_value(Policy { tools: vec![] }),
        ("GET", "/v1/audit") => to_value(Calls { calls: vec![Call { time: t, host: "h".into(), server: "s".into(), method: None, tool: None, status: 0, duration_ms: 0.0, error: None }] }),
        ("POST", "/v1/shutdown") => to_value(Stopping { stopping: true }),
        _ => return None,
    };
    Some(v)
}

/// A serialized sample of a route's JSON body, where it takes one.
fn body_sample(method: &str, path: &str) -> Option<Value> {
    let v = match (method, path) {
        ("POST", "/v1/servers/{name}/logout") => to_value(Logout::default()),
        ("POST", "/v1/hosts") => to_value(NewHost { name: "h".into(), any_user: false }),
        ("POST", "/v1/servers") => to_value(AddServer { name: "n".into(), url: "u".into(), headers: vec![] }),
        ("POST", "/v1/approvals/{id}") => to_value(Decide { decision: Decision::Once }),
        ("PUT", "/v1/policy/{host}/{server}") => to_value(SetPolicy::default()),
        _ => return None,
    };
    Some(v)
}

#[test]
fn the_doc_lists_every_route_and_no_other() {
    let documented: Vec<(String, String)> = rows().iter().flat_map(|r| r.methods.iter().map(|m| (m.clone(), r.path.clone()))).collect();
    let code: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = code.iter().filter(|r| !documented.contains(r)).collect();
    let extra: Vec<_> = documented.iter().filter(|r| !code.contains(r)).collect();
    assert!(missing.is_empty(), "docs/CONTROL_API.md lacks the routes {missing:?}");
    assert!(extra.is_empty(), "docs/CONTROL_API.md lists routes the service does not have: {extra:?}");
    assert_eq!(documented.len(), code.len(), "a route is documented twice");
}

#[test]
fn the_doc_names_the_fields_each_answer_and_body_has() {
    for row in rows() {
        for method in &row.methods {
            if let Some(sample) = answer_sample(method, &row.path) {
                let shape = shape(&row.answer).unwrap_or_else(|| panic!("{method} {}: no answer shape in the doc", row.path));
                assert_eq!(keys(shape), fields(&sample), "{method} {}: the doc's answer {shape} against the type", row.path);
            }
            if let Some(sample) = body_sample(method, &row.path) {
                let shape = shape(&row.body).unwrap_or_else(|| panic!("{method} {}: no body shape in the doc", row.path));
                assert_eq!(keys(shape), fields(&sample), "{method} {}: the doc's body {shape} against the type", row.path);
            }
        }
    }
}

#[test]
fn the_doc_names_every_login_event_and_its_fields() {
    let row = rows().into_iter().find(|r| r.path == "/v1/login").expect("the login route is documented");
    let url = Url::parse("https://as.example/a").unwrap();
    let events = [
        LoginEvent::OpenUrl { url },
        LoginEvent::BrowserFailed { message: "m".into() },
        LoginEvent::PasteUrl { url: Url::parse("https://as.example/a").unwrap() },
        LoginEvent::DeviceCode(CodePrompt {
            user_code: "c".into(),
            verification_uri: Url::parse("https://as.example/device").unwrap(),
            verification_uri_complete: Some("https://as.example/device?user_code=c".into()),
            expires_in_secs: 1,
        }),
        LoginEvent::Note { message: "m".into() },
        LoginEvent::Done { server: sample_server() },
        LoginEvent::Error { message: "m".into() },
    ];
    let documented: Vec<&str> = spans(&row.answer).into_iter().filter(|s| s.starts_with("{\"event\"")).collect();
    assert_eq!(documented.len(), events.len(), "the doc lists {documented:?}");
    for (event, shape) in events.iter().zip(documented) {
        let v = to_value(event);
        assert!(shape.contains(&format!("\"event\":{}", v["event"])), "{shape} is not {}", v["event"]);
        assert_eq!(keys(shape), fields(&v), "the login event {shape}");
    }
}

/// The object shape of the field `field` inside `shape` (`"field":{...}`).
fn nested<'a>(shape: &'a str, field: &str) -> &'a str {
    let start = shape.find(&format!("\"{field}\":{{")).unwrap_or_else(|| panic!("{shape} has no object {field}")) + field.len() + 3;
    let len = shape[start..].find('}').unwrap_or_else(|| panic!("{shape}: {field} does not end"));
    &shape[start..=start + len]
}

/// The shape a line such as `` `Server` = `{...}` `` gives a named type (it may span lines).
fn named_shape(name: &str) -> String {
    let opening = format!("`{name}` = `");
    let start = DOC.find(&opening).unwrap_or_else(|| panic!("the doc defines no {name}")) + opening.len();
    let len = DOC[start..].find('`').unwrap();
    DOC[start..start + len].replace('\n', "")
}

#[test]
fn the_doc_names_the_fields_of_its_named_types() {
    let t = datetime!(2026-01-02 03:04:05 UTC);
    let login = Login {
        url: "u".into(),
        name: Some("n".into()),
        client_id: Some("c".into()),
        client_secret: Some(Secret::new("s")),
        client_metadata_url: Some(Url::parse("https://app.example/c.json").unwrap()),
        scopes: vec!["a".into()],
        timeout_secs: Some(1),
        method: Some(Method::Device),
        headless: Some("SSH session".into()),
        quirks: Some(Quirks { no_resource_param: true, ..Quirks::default() }),
        account: Some("work".into()),
        registration_token: Some(Secret::new("t")),
    };
    let approval = Approval { id: 1, host: "h".into(), server: "s".into(), scopes: vec![], requested_at: t };
    let decision = DecisionRecord { host: "h".into(), server: "s".into(), decision: Decision::Once, decided_at: t };
    let import = Import {
        url: "u".into(),
        name: Some("n".into()),
        client: ImportClient { client_id: "c".into(), client_secret: None, token_endpoint_auth_method: None, issuer: None },
        tokens: ImportTokens { access_token: Secret::new("a"), refresh_token: None, token_type: "bearer".into(), expires_at: None, scopes: vec![], issuer: None },
    };
    let named = [
        ("Server", to_value(sample_server())),
        ("Login", to_value(login)),
        ("SignIn", to_value(SignIn { server: "s".into(), asked_by: Some("h".into()), started_at: t, how: SignInHow::Paste, url: Some(Url::parse("https://as.example/a").unwrap()), user_code: Some("c".into()) })),
        ("Import", to_value(&import)),
        ("Approval", to_value(approval)),
        ("Decision", to_value(decision)),
    ];
    for (name, sample) in named {
        assert_eq!(keys(&named_shape(name)), fields(&sample), "the doc's {name}");
    }
    let shape = named_shape("Import");
    for (part, sample) in [("client", to_value(&import.client)), ("tokens", to_value(&import.tokens))] {
        assert_eq!(keys(nested(&shape, part)), fields(&sample), "the doc's Import.{part}");
    }
}

#[test]
fn shapes_are_read_at_their_outer_level() {
    let k = keys(r#"{"hosts":[{"name","created_at"}],"endpoint":"http://127.0.0.1:PORT","version","ok":true}"#);
    assert_eq!(k, ["hosts", "endpoint", "version", "ok"].into_iter().map(String::from).collect());
    assert_eq!(cells(r#"| `POST /a` | `{"d":"x"\|"y"}` | ok |"#), ["`POST /a`", r#"`{"d":"x"|"y"}`"#, "ok"]);
}
