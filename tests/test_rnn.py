"""The shared LSTMs: without packing and off oneDNN, they compute what nn.LSTM computes packed."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmsa_atsuko.models.common import rnn as rnn_module
from mmsa_atsuko.models.common.rnn import BiLSTM, LSTMEncoder, reverse_valid_frames


def _grads(module):
    return [p.grad.clone() for p in module.parameters()]


def test_reverse_valid_frames_reverses_only_the_true_frames_and_is_its_own_inverse():
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    lengths = torch.tensor([3, 5])
    got = reverse_valid_frames(x, lengths)
    assert got[..., 0].tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_valid_frames(got, lengths), x)


def test_aten_lstm_is_chosen_for_big_projections_of_data_in_training_only(monkeypatch):
    rnn = nn.LSTM(768, 128, batch_first=True)
    data = torch.zeros(64, 2, 768)                    # 64 * 768 * 512 = 25M multiply-adds per step
    assert rnn_module._use_aten_lstm(rnn, data)
    assert not rnn_module._use_aten_lstm(rnn, data[:8])                          # small projection
    assert not rnn_module._use_aten_lstm(rnn, data.clone().requires_grad_())     # needs the input gradient
    with torch.no_grad():
        assert not rnn_module._use_aten_lstm(rnn, data)                          # inference


def test_unpacked_training_forward_matches_onednn_and_restores_the_flag(monkeypatch):
    monkeypatch.setattr(rnn_module, "ATEN_LSTM_MIN_PROJECTION", 0)              # force the ATen path
    torch.manual_seed(0)
    encoder = LSTMEncoder(12, 7)
    x = torch.randn(5, 9, 12)
    assert torch.backends.mkldnn.enabled
    _, (h_n, _) = encoder.rnn(x)                      # oneDNN: PyTorch's CPU default
    h_n[-1].pow(2).sum().backward()
    expected, expected_grads = h_n[-1].detach(), _grads(encoder)

    encoder.zero_grad()
    h = encoder(x)
    assert torch.backends.mkldnn.enabled, "the encoder must restore the global oneDNN switch"
    h.pow(2).sum().backward()
    torch.testing.assert_close(h.detach(), expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(_grads(encoder), expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_flag_is_restored_when_the_lstm_raises(monkeypatch):
    monkeypatch.setattr(rnn_module, "ATEN_LSTM_MIN_PROJECTION", 0)
    encoder = LSTMEncoder(12, 7)
    with pytest.raises(RuntimeError):
        encoder(torch.randn(5, 9, 11))                # wrong feature size: nn.LSTM raises
    assert torch.backends.mkldnn.enabled


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("aten_threshold", [0, rnn_module.ATEN_LSTM_MIN_PROJECTION])
def test_lengths_give_the_packed_final_state_and_gradients(num_layers, aten_threshold, monkeypatch):
    monkeypatch.setattr(rnn_module, "ATEN_LSTM_MIN_PROJECTION", aten_threshold)
    torch.manual_seed(1)
    encoder = LSTMEncoder(4, 3, num_layers=num_layers)
    x = torch.randn(4, 7, 4)
    x[1, 2:] = 5.0                                    # padding that must not leak into sample 1
    lengths = torch.tensor([7, 2, 0, 5])              # 0: read one frame, as before packing
    packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    _, (h_n, _) = encoder.rnn(packed)
    h_n[-1].pow(2).sum().backward()
    expected, expected_grads = h_n[-1].detach(), _grads(encoder)

    encoder.zero_grad()
    h = encoder(x, lengths)
    h.pow(2).sum().backward()
    torch.testing.assert_close(h.detach(), expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(_grads(encoder), expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bilstm_matches_a_packed_bidirectional_lstm():
    torch.manual_seed(2)
    bilstm = BiLSTM(3, 4)
    # Same seed, one bidirectional nn.LSTM: same initial weights (the docstring's promise).
    torch.manual_seed(2)
    reference = nn.LSTM(3, 4, bidirectional=True, batch_first=True)
    for direction, suffix in ((bilstm.forward_rnn, ""), (bilstm.backward_rnn, "_reverse")):
        for name, param in direction.named_parameters():
            assert torch.equal(param, getattr(reference, name + suffix)), name + suffix

    x = torch.randn(3, 6, 3)
    x[2, 3:] = -4.0                                   # padding
    lengths = torch.tensor([6, 1, 3])
    packed_out, (h_n, _) = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    expected_out, _ = pad_packed_sequence(packed_out, batch_first=True)
    (expected_out.pow(2).sum() + h_n.sum()).backward()

    outputs, final = bilstm(x, lengths)
    (outputs.pow(2).sum() + final.sum()).backward()
    torch.testing.assert_close(outputs, expected_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(final, h_n, rtol=1e-5, atol=1e-6)
    for direction, suffix in ((bilstm.forward_rnn, ""), (bilstm.backward_rnn, "_reverse")):
        for name, param in direction.named_parameters():
            torch.testing.assert_close(param.grad, getattr(reference, name + suffix).grad, rtol=1e-5, atol=1e-6)
