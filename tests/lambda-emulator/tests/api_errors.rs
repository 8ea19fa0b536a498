//! Header and body validation of the Runtime, Extensions and Telemetry APIs, driven with curl
//! next to a bash/curl extension.

mod common;

use common::{curl, fixture, Workspace};
use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, ShutdownReason, Status};
use serde_json::{json, Value};

fn assert_error(response: (u16, Value), status: u16, error_type: &str) {
    assert_eq!(response.0, status, "{error_type}: {}", response.1);
    assert_eq!(response.1["errorType"], error_type, "{}", response.1);
    assert!(response.1["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{}", response.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_api_rejects_invalid_headers() {
    let workspace = Workspace::new();
    workspace.add_executable("curl-ext", &std::fs::read_to_string(fixture("curl_extension.sh")).unwrap());
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    let init = emulator.init_report();
    assert_eq!(init.status, Status::Success, "{init:?}");
    let id = init.extensions[0].id.clone();
    let base = format!("http://{}/2020-01-01/extension", emulator.runtime_api());
    let register = format!("{base}/register");
    let next = format!("{base}/event/next");
    let init_error = format!("{base}/init/error");
    let exit_error = format!("{base}/exit/error");
    let id_header = format!("Lambda-Extension-Identifier: {id}");

    // Register.
    assert_error(curl(&["-d", r#"{"events":["INVOKE"]}"#, &register]), 403, "Extension.InvalidExtensionName");
    assert_error(
        curl(&["-H", "Lambda-Extension-Name: late", "-d", "not json", &register]),
        403,
        "InvalidRequestFormat",
    );
    assert_error(
        curl(&["-H", "Lambda-Extension-Name: late", "-d", r#"{"events":["RESTART"]}"#, &register]),
        403,
        "Extension.InvalidEventType",
    );
    assert_error(
        curl(&["-H", "Lambda-Extension-Name: late", "-d", r#"{"events":["INVOKE"]}"#, &register]),
        403,
        "Extension.RegistrationClosed",
    );
    assert_error(
        curl(&["-H", "Lambda-Extension-Name: curl-ext", "-d", r#"{"events":["INVOKE"]}"#, &register]),
        403,
        "Extension.InvalidExtensionState",
    );

    // Identifier checks, shared by next, init/error, exit/error and the Telemetry API.
    for url in [&next, &init_error, &exit_error] {
        let method = if url == &next { "GET" } else { "POST" };
        assert_error(curl(&["-X", method, url]), 403, "Extension.MissingExtensionIdentifier");
        assert_error(
            curl(&["-X", method, "-H", "Lambda-Extension-Identifier: not-a-uuid", url]),
            403,
            "Extension.InvalidExtensionIdentifier",
        );
        assert_error(
            curl(&["-X", method, "-H", "Lambda-Extension-Identifier: 00000000-0000-4000-8000-000000000000", url]),
            403,
            "Extension.UnknownExtensionIdentifier",
        );
    }

    // Error reports need the error type header; init errors only during init.
    assert_error(curl(&["-X", "POST", "-H", &id_header, &init_error]), 403, "Extension.MissingHeader");
    assert_error(
        curl(&[
            "-X",
            "POST",
            "-H",
            &id_header,
            "-H",
            "Lambda-Extension-Function-Error-Type: Extension.Late",
            &init_error,
        ]),
        403,
        "Extension.InvalidExtensionState",
    );

    // Telemetry API.
    let telemetry = format!("http://{}/2022-07-01/telemetry", emulator.runtime_api());
    assert_error(curl(&["-X", "PUT", "-d", "{}", &telemetry]), 403, "Extension.MissingExtensionIdentifier");
    let (status, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &id_header,
        "-d",
        r#"{"schemaVersion":"2022-12-13","types":[],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#,
        &telemetry,
    ]);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorType": "ValidationError", "errorMessage": "URI port is not provided; types should not be empty"})
    );
    for (buffering, field) in [
        (r#"{"maxItems":999}"#, "maxItems"),
        (r#"{"maxItems":10001}"#, "maxItems"),
        (r#"{"maxBytes":262143}"#, "maxBytes"),
        (r#"{"maxBytes":1048577}"#, "maxBytes"),
        (r#"{"timeoutMs":24}"#, "timeoutMs"),
        (r#"{"timeoutMs":30001}"#, "timeoutMs"),
    ] {
        let request = format!(
            r#"{{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{buffering},"destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243"}}}}"#
        );
        let (status, body) = curl(&["-X", "PUT", "-H", &id_header, "-d", &request, &telemetry]);
        assert_eq!(status, 400, "{buffering}");
        assert_eq!(body["errorType"], "ValidationError");
        assert!(body["errorMessage"].as_str().unwrap().contains(field), "{body}");
    }
    let (status, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &id_header,
        "-d",
        r#"{"schemaVersion":"2021-01-01","types":["platform"],"destination":{"protocol":"FTP","URI":"http://example.com:80"}}"#,
        &telemetry,
    ]);
    assert_eq!(status, 400);
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("schemaVersion"), "{message}");
    assert!(message.contains("protocol"), "{message}");
    assert!(message.contains("host"), "{message}");

    // The bash/curl extension itself got the documented register response and the events.
    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    assert_eq!(outcome.status, Status::Success);
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");
    let register_body: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace.out_dir().join("curl-ext.events.register")).unwrap())
            .unwrap();
    assert_eq!(register_body["functionName"], "palisade-test");
    assert!(register_body.get("accountId").is_none(), "accountId only with Lambda-Extension-Accept-Feature");
    let events: Vec<Value> = std::fs::read_to_string(workspace.out_dir().join("curl-ext.events"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventType"], "INVOKE");
    assert_eq!(events[0]["requestId"], json!(outcome.request_id));
    assert_eq!(events[1]["eventType"], "SHUTDOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_rejects_invalid_calls() {
    let workspace = Workspace::new();
    // The runtime journals each reply after the emulator settles the invoke; without a freeze
    // between invokes it can finish writing before shutdown.
    let config = Config { freeze: false, ..workspace.config() };
    let emulator = Emulator::start(config).await.expect("start emulator");
    let base = format!("http://{}/2018-06-01/runtime", emulator.runtime_api());

    assert_error(curl(&["-d", "{}", &format!("{base}/invocation/no-such-id/response")]), 400, "InvalidRequestID");
    assert_error(curl(&["-d", "{}", &format!("{base}/invocation/no-such-id/error")]), 400, "InvalidRequestID");
    assert_error(curl(&["-d", "{}", &format!("{base}/init/error")]), 403, "InvalidStateTransition");
    let (status, _) = curl(&[&format!("{base}/no/such/path")]);
    assert_eq!(status, 404);

    // A second response for the same invoke is out of order.
    let outcome = emulator.invoke(InvokeRequest::new(r#"{"twice":true}"#)).await.expect("invoke");
    assert_eq!(outcome.status, Status::Success);
    // An oversized response becomes an error for the caller.
    let big = emulator.invoke(InvokeRequest::new(r#"{"big":6291457}"#)).await.expect("invoke");

    // Wait for the 413 reply's journal entry before shutdown stops the runtime.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while workspace.journal_of("runtime", "posted").len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let posted = workspace.journal_of("runtime", "posted");
    assert_eq!(posted[0]["status"], 202);
    assert_eq!(serde_json::from_str::<Value>(posted[0]["reply"].as_str().unwrap()).unwrap(), json!({"status": "OK"}));
    let twice = &workspace.journal_of("runtime", "posted_twice")[0];
    assert_eq!(twice["status"], 403);
    assert_eq!(
        serde_json::from_str::<Value>(twice["reply"].as_str().unwrap()).unwrap()["errorType"],
        "InvalidStateTransition"
    );
    assert_eq!(posted[1]["status"], 413);
    assert_eq!(
        serde_json::from_str::<Value>(posted[1]["reply"].as_str().unwrap()).unwrap()["errorType"],
        "RequestEntityTooLarge"
    );
    assert_eq!(big.error_type.as_deref(), Some("Function.ResponseSizeTooLarge"));
    assert_eq!(big.json().unwrap()["errorType"], "Function.ResponseSizeTooLarge");
}
