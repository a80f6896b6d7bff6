import { render } from 'preact';
import { App } from './app.js';
import './styles.css';

const root = document.getElementById('app')!;
// the boot message goes: render() adds to what the container holds
root.textContent = '';
render(<App />, root);
