# The seed's Marketplace (the tutorial "Python Microservices With gRPC"), for the benchmark harness.
# Kept as the seed has it: Flask, a module-global gRPC channel and stub, render_template of
# homepage.html with three MYSTERY books for user 1, run with Flask's own server
# (`python marketplace.py`). Bench-only changes: the Recommendations port comes from
# RECOMMENDATIONS_PORT (the seed hard-codes 50051), the listening address from SEED_HOST and
# SEED_PORT, and a JSON route that the seed does not have (marked below) gives the JSON API
# scenario a Python reference of the same shape.

import os

from flask import Flask, jsonify, render_template
import grpc

from recommendations_pb2 import BookCategory, RecommendationRequest
from recommendations_pb2_grpc import RecommendationsStub

app = Flask(__name__)

recommendations_host = os.getenv("RECOMMENDATIONS_HOST", "localhost")
recommendations_port = os.getenv("RECOMMENDATIONS_PORT", "50051")
recommendations_channel = grpc.insecure_channel(
    f"{recommendations_host}:{recommendations_port}"
)
recommendations_client = RecommendationsStub(recommendations_channel)


@app.route("/")
def render_homepage():
    recommendations_request = RecommendationRequest(
        user_id=1, category=BookCategory.MYSTERY, max_results=3
    )
    recommendations_response = recommendations_client.Recommend(
        recommendations_request
    )
    return render_template(
        "homepage.html",
        recommendations=recommendations_response.recommendations,
    )


# Not in the seed: the same call answered as JSON, for the JSON API scenario.
@app.route("/api/recommendations")
def api_recommendations():
    recommendations_request = RecommendationRequest(
        user_id=1, category=BookCategory.MYSTERY, max_results=3
    )
    recommendations_response = recommendations_client.Recommend(
        recommendations_request
    )
    return jsonify(
        category="mystery",
        recommendations=[
            {"id": book.id, "title": book.title}
            for book in recommendations_response.recommendations
        ],
    )


if __name__ == "__main__":
    app.run(host=os.getenv("SEED_HOST", "127.0.0.1"), port=int(os.getenv("SEED_PORT", "5001")))
