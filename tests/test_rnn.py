"""The shared LSTM encoder: the training path that bypasses oneDNN computes what oneDNN computes."""
import torch

from mmsa_atsuko.models.common.rnn import LSTMEncoder


def _output_and_grads(encoder, x, onednn: bool):
    """Run nn.LSTM itself with oneDNN on or off, the reference the encoder must match."""
    encoder.zero_grad()
    torch.backends.mkldnn.enabled = onednn
    try:
        _, (h_n, _) = encoder.rnn(x)
    finally:
        torch.backends.mkldnn.enabled = True
    h_n[-1].pow(2).sum().backward()
    return h_n[-1].detach(), [p.grad.clone() for p in encoder.parameters()]


def test_training_forward_matches_onednn_and_restores_the_flag():
    torch.manual_seed(0)
    encoder = LSTMEncoder(12, 7)
    x = torch.randn(5, 9, 12)
    expected, expected_grads = _output_and_grads(encoder, x, onednn=True)

    encoder.zero_grad()
    assert torch.backends.mkldnn.enabled
    h = encoder(x)
    assert torch.backends.mkldnn.enabled, "the encoder must restore the global oneDNN switch"
    h.pow(2).sum().backward()
    torch.testing.assert_close(h.detach(), expected, rtol=1e-5, atol=1e-6)
    for got, want in zip((p.grad for p in encoder.parameters()), expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_flag_is_restored_when_the_lstm_raises():
    encoder = LSTMEncoder(12, 7)
    try:
        encoder(torch.randn(5, 9, 11))            # wrong feature size: nn.LSTM raises
    except RuntimeError:
        pass
    else:
        raise AssertionError("nn.LSTM accepted 11 features for input_size 12")
    assert torch.backends.mkldnn.enabled


def test_inference_and_packed_input_agree_with_the_plain_lstm():
    torch.manual_seed(1)
    encoder = LSTMEncoder(4, 3)
    x = torch.randn(3, 6, 4)
    with torch.no_grad():
        _, (h_n, _) = encoder.rnn(x)
        torch.testing.assert_close(encoder(x), h_n[-1])
        # Packed: each sample's state after its own last frame equals running it alone, unpadded.
        lengths = torch.tensor([6, 2, 4])
        packed = encoder(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            _, (h_i, _) = encoder.rnn(x[i:i + 1, :n])
            torch.testing.assert_close(packed[i], h_i[-1, 0])
