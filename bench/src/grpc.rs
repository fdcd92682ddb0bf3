//! A tonic client for `Recommend`, and the request body `h2load` sends.

use anyhow::Context;
use bookshop_proto::{
    BookCategory, RecommendationRequest, RecommendationResponse,
    recommendations_client::RecommendationsClient,
};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

/// A client on its own HTTP/2 connection to `addr` (`host:port`).
pub async fn connect(addr: &str) -> anyhow::Result<RecommendationsClient<Channel>> {
    let channel = endpoint(addr)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(RecommendationsClient::new(channel))
}

/// A client for `addr` that connects at its first call.
pub fn connect_lazy(addr: &str) -> anyhow::Result<RecommendationsClient<Channel>> {
    Ok(RecommendationsClient::new(endpoint(addr)?.connect_lazy()))
}

/// `http://addr`, with the socket option the Marketplace's channel has.
fn endpoint(addr: &str) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .context("invalid address")?
        .tcp_nodelay(true))
}

/// The request of the load scenarios: the seed Marketplace's (user 1, three mystery books).
pub fn seed_request() -> RecommendationRequest {
    RecommendationRequest {
        user_id: 1,
        category: BookCategory::Mystery as i32,
        max_results: 3,
    }
}

/// `request` framed as a gRPC message body (flag byte 0, big-endian length, protobuf bytes),
/// what `h2load -d FILE` sends.
pub fn framed(request: &RecommendationRequest) -> Vec<u8> {
    let message = request.encode_to_vec();
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(&message);
    body
}

/// One call.
pub async fn recommend(
    client: &mut RecommendationsClient<Channel>,
    request: RecommendationRequest,
) -> Result<RecommendationResponse, tonic::Status> {
    client.recommend(request).await.map(|r| r.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framed_body_is_flag_length_and_message() {
        // user_id = 1 (field 1, varint) and max_results = 3 (field 3); the category is the
        // default (MYSTERY = 0), which proto3 leaves out.
        assert_eq!(
            framed(&seed_request()),
            vec![0, 0, 0, 0, 4, 0x08, 0x01, 0x18, 0x03]
        );
    }
}
