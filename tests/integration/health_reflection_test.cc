// The coordinator's standard gRPC health service and server reflection, over the same
// mutual-TLS port as the federation (real handshakes with a site certificate). No generated
// stubs for those protos ship with Debian's gRPC, so the test speaks their wire format
// through the generic stub: HealthCheckRequest {service = 1}, HealthCheckResponse
// {status = 1; SERVING = 1}, ServerReflectionRequest {list_services = 7}.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A protobuf string field: tag, length, bytes (lengths below 128 only).
std::string StringField(int field, const std::string& value) {
  return std::string{static_cast<char>((field << 3) | 2), static_cast<char>(value.size())} + value;
}

void Await(grpc::CompletionQueue& cq, void* expected) {
  void* tag = nullptr;
  bool ok = false;
  REQUIRE(cq.Next(&tag, &ok));
  REQUIRE(tag == expected);
}

// Calls grpc.health.v1.Health/Check for `service`; returns the status (or -1 on an RPC error).
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                 grpc::Status* rpc_status) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check",
                                    ToBuffer(StringField(1, service)), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  call->Finish(&response, rpc_status, reinterpret_cast<void*>(1));
  Await(cq, reinterpret_cast<void*>(1));
  cq.Shutdown();
  if (!rpc_status->ok()) return -1;
  const std::string bytes = FromBuffer(response);
  // HealthCheckResponse: field 1 varint (absent = 0, UNKNOWN).
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : 0;
}

}  // namespace

TEST_CASE("The coordinator answers gRPC health checks over mutual TLS", "[tls][health]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 1;
  fed.Start();
  grpc::Status status;
  CHECK(HealthStatus(fed.ChannelFor("site-a"), "", &status) == 1);  // SERVING
  INFO(status.error_message());
  CHECK(HealthStatus(fed.ChannelFor("site-a"), "cohort.v1.Federation", &status) == 1);
  // An unknown service name is NOT_FOUND, as the health protocol says.
  CHECK(HealthStatus(fed.ChannelFor("site-a"), "no.such.Service", &status) == -1);
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
  fed.StopCoordinator();
}

TEST_CASE("The plaintext health port serves only grpc.health.v1, for Kubernetes probes",
          "[health]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 1;
  fed.config().health_listen = "127.0.0.1:0";
  fed.Start();
  const int port = fed.coordinator().health_port();
  REQUIRE(port > 0);
  REQUIRE(port != fed.coordinator().port());
  // No certificate at all: what kubelet's grpc probe does.
  auto plaintext = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
  grpc::Status status;
  CHECK(HealthStatus(plaintext, "", &status) == 1);  // SERVING
  CHECK(HealthStatus(plaintext, "cohort.v1.Federation", &status) == 1);
  // Nothing but health is served there: a federation call is UNIMPLEMENTED.
  grpc::Status probe = ProbeClosedRound(plaintext);
  CHECK(probe.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  fed.StopCoordinator();
  // Stopped: the probe fails (NOT_SERVING or the port is closed).
  CHECK(HealthStatus(plaintext, "", &status) != 1);
}

TEST_CASE("Server reflection lists the federation and health services", "[tls][health]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 1;
  fed.Start();
  grpc::GenericStub stub(fed.ChannelFor("site-a"));
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto tag = [](intptr_t n) { return reinterpret_cast<void*>(n); };
  stream->StartCall(tag(1));
  Await(cq, tag(1));
  stream->Write(ToBuffer(StringField(7, "*")), tag(2));  // list_services
  Await(cq, tag(2));
  grpc::ByteBuffer response;
  stream->Read(&response, tag(3));
  Await(cq, tag(3));
  stream->WritesDone(tag(4));
  Await(cq, tag(4));
  grpc::Status status;
  stream->Finish(&status, tag(5));
  Await(cq, tag(5));
  cq.Shutdown();
  INFO(status.error_message());
  REQUIRE(status.ok());
  const std::string listing = FromBuffer(response);
  CHECK(absl::StrContains(listing, "cohort.v1.Federation"));
  CHECK(absl::StrContains(listing, "grpc.health.v1.Health"));
  fed.StopCoordinator();
}

}  // namespace cohort::testing
