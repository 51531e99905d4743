//! `/api/v1/docs`: the OpenAPI document rendered as a page, with no script or CDN.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{RefOr, Required};

use super::views::v;
use super::web::Web;
use crate::api::ApiDoc;

#[derive(Serialize)]
struct OperationView {
    method: &'static str,
    path: String,
    summary: Option<String>,
    secured: bool,
    request: Option<String>,
    responses: Vec<ResponseView>,
}

#[derive(Serialize)]
struct ResponseView {
    status: String,
    description: String,
}

#[derive(Serialize)]
struct TagView {
    name: String,
    description: Option<String>,
    operations: Vec<OperationView>,
}

fn operation(method: &'static str, path: &str, op: &Operation) -> OperationView {
    let request = op.request_body.as_ref().and_then(|body| {
        let RefOr::T(body) = body else { return None };
        let RefOr::T(content) = body.content.values().next()? else {
            return None;
        };
        let schema = content.schema.as_ref()?;
        let name = match schema {
            RefOr::Ref(r) => r
                .ref_location
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
            RefOr::T(_) => "object".to_owned(),
        };
        let required = matches!(body.required, Some(Required::True));
        Some(if required {
            name
        } else {
            format!("{name} (optional)")
        })
    });
    OperationView {
        method,
        path: path.to_owned(),
        summary: op.summary.clone().or_else(|| op.description.clone()),
        secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
        request,
        responses: op
            .responses
            .responses
            .iter()
            .map(|(status, r)| ResponseView {
                status: status.clone(),
                description: match r {
                    RefOr::T(r) => r.description.clone(),
                    RefOr::Ref(r) => r.ref_location.clone(),
                },
            })
            .collect(),
    }
}

pub(crate) async fn api_docs(web: Web) -> Response {
    let doc = ApiDoc::openapi();
    let mut by_tag: BTreeMap<String, Vec<OperationView>> = BTreeMap::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let tag = op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .unwrap_or_default();
                by_tag
                    .entry(tag)
                    .or_default()
                    .push(operation(method, path, op));
            }
        }
    }
    let tags: Vec<TagView> = doc
        .tags
        .iter()
        .flatten()
        .map(|t| TagView {
            name: t.name.clone(),
            description: t.description.clone(),
            operations: by_tag.remove(&t.name).unwrap_or_default(),
        })
        .collect();
    let page = context! {
        tags => v(&tags),
        api_title => doc.info.title,
        api_description => doc.info.description,
        openapi_version => "3.1",
        title => "API reference",
    };
    web.render(StatusCode::OK, "api_docs.html", page)
}
